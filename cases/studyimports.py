"""Studies that came from the PACS: one row per pull (asked for by StudyInstanceUID, fetched by a
task) or per push (STOW-RS), with its state shown to the user, and the case that holds the study.

The study is known by a keyed hash of its source StudyInstanceUID (``study_key``), never the UID
itself: a pull keeps the UID only while it still has to fetch it.
"""

import hashlib
import hmac

from django.conf import settings
from django.db import models
from django.db.models import Q


def study_key(study_uid: str) -> str:
    """Keyed hash of a source StudyInstanceUID (keyed like patient references: PATIENT_REF_KEY)."""
    message = f"study:{study_uid.strip()}".encode()
    return hmac.new(settings.PATIENT_REF_KEY.encode(), message, hashlib.sha256).hexdigest()


class StudyImport(models.Model):
    class Source(models.TextChoices):
        PULL = "pull", "Pulled from the PACS"
        PUSH = "push", "Pushed by the PACS (STOW-RS)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        FETCHING = "fetching", "Fetching from the PACS"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    PENDING = (Status.QUEUED, Status.FETCHING)

    team = models.ForeignKey("cases.Team", on_delete=models.PROTECT, related_name="study_imports")
    # The case the study went to (or was asked for); empty until a pull without one has stored it.
    case = models.ForeignKey(
        "cases.Case", on_delete=models.CASCADE, null=True, blank=True, related_name="study_imports"
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=8, choices=Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    study_key = models.CharField(max_length=64, editable=False)
    # The source StudyInstanceUID, needed to fetch it: blanked once the pull is done or failed.
    study_uid = models.CharField(max_length=64, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The task message (its Celery id) that holds the pull while fetching: only a redelivery of it
    # takes the pull over, so a re-announced pull is never fetched twice at once (pacs_pull.claim).
    claim_token = models.CharField(max_length=64, blank=True, editable=False)
    # Why it failed, or why it waits to be tried again: shown to the user as is, never a UID.
    reason = models.CharField(max_length=500, blank=True)
    scan_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(study_uid="") | Q(status__in=["queued", "fetching"]),
                name="studyimport_source_uid_only_while_pending",
            ),
        ]
        indexes = [
            # "Which case of this team already holds this study" (cases.pacs_import.case_of_study).
            models.Index(fields=["team", "study_key"], name="studyimport_team_study_idx"),
            # A case's PACS activity on its page, newest first.
            models.Index(fields=["case", "-created_at"], name="studyimport_case_created_idx"),
        ]

    def __str__(self):
        return f"{self.get_source_display()} {self.pk}: {self.status}"

    @property
    def is_pending(self) -> bool:
        return self.status in self.PENDING
