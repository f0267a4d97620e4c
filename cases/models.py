"""Teams, their members and cases; the rest of the app's models live in topic modules (scans,
consent, auditlog, preferences) and are imported here, so Django loads them and ``cases.models.X`` works."""

import hashlib
import hmac

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Exists, OuterRef, Q

from ml import tasks

from .auditlog import AuditEvent
from .consent import Consent, ConsentEvent
from .preferences import Preference
from .pseudonyms import generate_pseudonym
from .refusals import CaseClosed, NotAllowed, NotReviewable, QuestionSettled, Refusal, ScanBusy
from .scans import (
    AnonymisationReport,
    Scan,
    delete_stored_files,
    erase_case_images,
    model_versions,
    predictions,
    retraction_reason,
    reviews,
    scan_upload_path,
)
from .studies import Series, Study, series_reviews, series_verdicts
from .studyimports import StudyImport

__all__ = [
    "AnonymisationReport",
    "AuditEvent",
    "Case",
    "CaseClosed",
    "Consent",
    "ConsentEvent",
    "Membership",
    "NotAllowed",
    "NotReviewable",
    "Preference",
    "QuestionSettled",
    "Refusal",
    "Scan",
    "ScanBusy",
    "Series",
    "Study",
    "StudyImport",
    "Team",
    "cases_with_consent",
    "delete_stored_files",
    "erase_case_images",
    "hash_patient_reference",
    "model_versions",
    "predictions",
    "retraction_reason",
    "reviews",
    "scan_upload_path",
]


class Team(models.Model):
    name = models.CharField(max_length=100)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["name"], name="team_name_unique")]

    def __str__(self):
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="membership_user_team_unique")]

    def __str__(self):
        return f"{self.user} in {self.team}"


def hash_patient_reference(reference: str) -> str:
    """Keyed hash of an external patient reference; the reference itself is never stored."""
    normalised = "".join(reference.split()).upper()
    return hmac.new(settings.PATIENT_REF_KEY.encode(), normalised.encode(), hashlib.sha256).hexdigest()


class CaseQuerySet(models.QuerySet):
    def with_consent(self, scope):
        """Cases whose current consent for ``scope`` is granted; no record means pending (excluded)."""
        granted = Consent.objects.filter(case=OuterRef("pk"), scope=scope, state=Consent.State.GRANTED)
        return self.filter(Exists(granted))

    def without_consent(self, scope):
        granted = Consent.objects.filter(case=OuterRef("pk"), scope=scope, state=Consent.State.GRANTED)
        return self.exclude(Exists(granted))


class Case(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class Flag(models.TextChoices):
        NONE = "none", "No flag"
        TUMOUR_SUSPECTED = "tumour_suspected", "Tumour suspected – review"
        UNCERTAIN = "uncertain", "Uncertain – refer"

    pseudonym = models.CharField(max_length=64, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="cases")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cases_created"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    flag = models.CharField(max_length=32, choices=Flag.choices, default=Flag.NONE)
    # The clinical question (ml.tasks): its active model classifies the case's scans.
    task = models.CharField(
        "clinical question", max_length=32, choices=tasks.choices(), default=tasks.DEFAULT
    )
    patient_ref_hash = models.CharField(max_length=64, blank=True, editable=False)
    notes = models.TextField(blank=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["pseudonym"], name="case_pseudonym_unique"),
        ]
        indexes = [
            # Case list: a team's cases, newest first.
            models.Index(fields=["team", "-created_at"], name="case_team_created_idx"),
            # "Find earlier cases of this patient" by keyed reference hash.
            models.Index(
                fields=["patient_ref_hash"],
                name="case_patient_ref_idx",
                condition=~Q(patient_ref_hash=""),
            ),
        ]

    def __str__(self):
        return self.pseudonym

    def save(self, *args, **kwargs):
        if self.pseudonym:
            return super().save(*args, **kwargs)
        # A collision is astronomically rare but possible; the constraint decides, we retry.
        # Only that collision: any other error (a missing field, another constraint) is raised as is.
        for _ in range(10):
            self.pseudonym = generate_pseudonym()
            try:
                with transaction.atomic():
                    return super().save(*args, **kwargs)
            except IntegrityError:
                taken = Case.objects.filter(pseudonym=self.pseudonym).exists()
                self.pseudonym = ""
                self.pk = None
                if not taken:
                    raise
        raise IntegrityError("Could not generate a unique case pseudonym.")

    @property
    def is_closed(self):
        return self.status == self.Status.CLOSED

    def check_open(self, action: str):
        """Raise CaseClosed if the case is closed: read-only (no uploads, reviews, retractions or
        note changes) until it is reopened. ``action`` completes "reopen it to ..."."""
        if self.is_closed:
            raise CaseClosed(f"Case {self.pseudonym} is closed, so it is read-only: reopen it to {action}.")

    def lock(self):
        """Lock the case row (inside a transaction) and refresh its status: a teammate closing the
        case at the same moment then waits for the change at hand, or that change sees it closed."""
        self.status = Case.objects.select_for_update().values_list("status", flat=True).get(pk=self.pk)
        return self

    @classmethod
    def open(cls, created_by, team, notes="", patient_reference="", task=tasks.DEFAULT) -> "Case":
        """Open a case in ``team`` for the clinical question ``task`` and audit it: the one way the
        page and the API create a case."""
        case = cls(created_by=created_by, team=team, notes=notes, task=tasks.canonical(task))
        case.set_patient_reference(patient_reference)
        with transaction.atomic():
            case.save()
            AuditEvent.record(created_by, AuditEvent.Verb.CASE_CREATE, case, task=case.task)
        return case

    @property
    def question(self) -> tasks.Task:
        return tasks.get(self.task)

    def check_question_open(self):
        """Raise QuestionSettled once a scan of the case is reviewed: that review answered the
        question asked, and asking another would leave it standing under the wrong one."""
        reviewed = reviews().filter(prediction__scan__case=self, prediction__scan__retracted_at=None)
        # A series review answers for its slices (worklist.SERIES_REVIEW_RULE): it settles them too.
        series_reviewed = series_reviews().filter(scans__case=self, scans__retracted_at=None)
        if reviewed.exists() or series_reviewed.exists():
            raise QuestionSettled(
                f"Case {self.pseudonym} stays a {self.question.label} case: a clinician has reviewed "
                "one of its scans under that question. Open a new case to ask another."
            )

    def viewed_by(self, user, scan=None):
        """Audit that ``user`` read this case (its page or API body, or one ``scan``'s result)."""
        AuditEvent.record(user, AuditEvent.Verb.CASE_VIEW, self, **({"scan": scan.pk} if scan else {}))

    def change(self, user, **changes) -> list[str]:
        """Set ``changes`` (status, notes, task) and audit it; a closed case takes no change but
        reopening (raises CaseClosed), and the question changes only while no scan is reviewed
        (raises QuestionSettled); refusals are audited."""
        with AuditEvent.refusals(user, self, "case_update"), transaction.atomic():
            # Closing and editing at once: check the edit against the case as it is now.
            current = Case.objects.select_for_update().get(pk=self.pk)
            changed = sorted(name for name, value in changes.items() if getattr(current, name) != value)
            if changed and changes.get("status", current.status) != self.Status.OPEN:
                current.check_open("change its notes")
            detail = {}
            if "task" in changed:
                current.check_open("change its clinical question")
                current.check_question_open()
                detail["task"] = {"from": current.task, "to": changes["task"]}
            for name in changed:
                setattr(self, name, changes[name])
            if changed:
                # Only these fields: a worker may be updating the flag meanwhile.
                self.save(update_fields=[*changed, "updated_at"])
            AuditEvent.record(user, AuditEvent.Verb.CASE_UPDATE, self, fields=changed, **detail)
        return changed

    def set_patient_reference(self, reference: str):
        self.patient_ref_hash = hash_patient_reference(reference) if reference.strip() else ""

    def refresh_flag(self):
        """Recompute the case flag from each scan's latest prediction (the model card's thresholds),
        a series with a verdict by its current one instead of its slices' (the series rule reads
        them together: it may flag what no single slice does, or clear isolated slices)."""
        judged = {}  # series id -> its current verdict's tumour_suspected
        verdicts = series_verdicts().filter(series__case=self, has_rule=True)
        ranked = verdicts.order_by("series_id", "-model_version__is_active", "-computed_at", "-id")
        for series_id, suspected in ranked.values_list("series_id", "tumour_suspected"):
            judged.setdefault(series_id, bool(suspected))
        latest = (
            predictions().filter(scan__case=self, scan__retracted_at=None).order_by("scan_id", "-created_at")
        )
        seen, suspected = set(), any(judged.values())
        for scan_id, series_id, slice_suspected in latest.values_list(
            "scan_id", "scan__series_id", "tumour_suspected"
        ):
            if scan_id not in seen:
                seen.add(scan_id)
                if series_id not in judged:
                    suspected |= slice_suspected
        uncertain = self.scans.not_retracted().filter(outcome=Scan.Outcome.UNCERTAIN).exists()
        if suspected:
            flag = self.Flag.TUMOUR_SUSPECTED
        elif uncertain:
            flag = self.Flag.UNCERTAIN
        else:
            flag = self.Flag.NONE
        Case.objects.filter(pk=self.pk).update(flag=flag)
        self.flag = flag


def cases_with_consent(scope):
    """Every case whose current consent for ``scope`` is granted (analytics, training export)."""
    return Case.objects.with_consent(scope)
