"""Scans of a case: upload path, anonymisation reports, review and retraction rules, erasure, and
the predictions and reviews the inference app adds to them (read without importing inference)."""

import logging
import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.db.models import OuterRef
from django.utils import timezone

from ml import tasks

from .auditlog import AuditEvent
from .refusals import NotAllowed, NotReviewable, Refusal, ScanBusy
from .roles import is_steward
from .signals import announce_ready, announce_series_changed
from .studies import series_reviews

logger = logging.getLogger(__name__)

# Why a scan's image is not shown yet (Scan.pixels_hidden_from): page, viewer and API say it alike.
PIXELS_HIDDEN = (
    "This scan is being checked for burned-in text (a name in its pixels): its image is shown once "
    "the check has passed it."
)
PIXELS_HELD = (
    "This scan is held for a data steward (its pixels may show burned-in text such as a name): its "
    "image is shown once a steward has released it."
)


def scan_upload_path(scan, filename):
    # Never the client's file name: it often carries a patient name or hospital number.
    # ``filename`` is ours ("scan.png" or "scan.dcm"); only its extension is kept.
    extension = ".dcm" if filename.endswith(".dcm") else ".png"
    return f"scans/{scan.case_id}/{uuid.uuid4().hex}{extension}"


class AnonymisationReport(models.Model):
    """What de-identification removed or replaced in one upload: attribute names, never values."""

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="anonymisation_reports")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # One entry per file: {"scan": id, "format": ..., "removed": [...], "replaced": [...], ...}
    files = models.JSONField(default=list)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Anonymisation of {len(self.files)} file(s) for {self.case}"


# A retraction's reason: at least one letter or digit and no NUL (the API schema states this pattern).
retraction_reason = RegexValidator(
    r"^[^\x00]*[A-Za-z0-9][^\x00]*$",
    "Say in a few words why the scan is taken back (for example: wrong patient, not a scan).",
)


class ScanQuerySet(models.QuerySet):
    def not_retracted(self):
        """The scans that belong to their case: a retracted scan's row stays only as a tombstone."""
        return self.filter(retracted_at=None)

    def pixels_shown_to(self, user):
        """The scans whose pixels ``user`` may see (Scan.pixels_hidden_from, as a filter)."""
        return self if is_steward(user) else self.exclude(status__in=Scan.PIXELS_HIDDEN_STATUSES)

    def with_series_reviewed(self):
        """Each scan annotated ``series_reviewed`` (a review of its series' verdict covers it) in the
        same query, so a page of scans reads ``Scan.is_reviewed`` without a query per scan."""
        reviewed = series_reviews().filter(scans=OuterRef("pk"))
        return self.annotate(series_reviewed=models.Exists(reviewed))


class Scan(models.Model):
    class Status(models.TextChoices):
        # Stored, not yet read for burned-in text (cases.burnedin, the worker's first step): its
        # pixels are shown to no one but stewards until the check passes it on to QUEUED's path.
        CHECKING = "checking", "Checking for burned-in text"
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        # Identity may be in the pixels (BurnedInAnnotation YES, or text found by cases.burnedin):
        # not classified until a steward releases it.
        HELD = "held", "Held for steward review"

    # A slice whose answer is still to come: its series has no verdict for it yet, and a series
    # review must wait for it (inference.series_verdict, cases.forms_series).
    UNANSWERED = (Status.CHECKING, Status.QUEUED, Status.PROCESSING, Status.HELD)
    # Not read for burned-in text yet, or held because it may show some: pixels for stewards only.
    PIXELS_HIDDEN_STATUSES = (Status.CHECKING, Status.HELD)

    class Outcome(models.TextChoices):
        CLASSIFIED = "classified", "Classified"
        UNCERTAIN = "uncertain", "Uncertain – refer"
        # Not a slice of the question's modality (a CT slice on an MRI question), or not a brain
        # scan the question's model reads at all (its out-of-distribution gate). Was "not_mri".
        WRONG_MODALITY = "wrong_modality", "Not classified: not a slice this question reads"
        NO_MODEL = "no_model", "Not classified: no model for this question yet"

    class Modality(models.TextChoices):
        IMAGE = "image", "Image (JPEG/PNG)"
        DICOM = "dicom", "DICOM slice"

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="scans")
    # Empty once erased: the row stays as a tombstone with its content hash.
    image = models.FileField(upload_to=scan_upload_path, max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the stored (de-identified) file")
    modality = models.CharField(max_length=16, choices=Modality.choices, default=Modality.IMAGE)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    # DICOM only: allow-listed technical attributes and the slice's window (cases.acquisition).
    acquisition = models.JSONField(default=dict, blank=True)
    # DICOM only: its series (cases.studies) and place in it, InstanceNumber then position (mm)
    # along the slice normal. None for JPEG/PNG images.
    series = models.ForeignKey(
        "cases.Series", on_delete=models.SET_NULL, null=True, blank=True, related_name="scans"
    )
    series_instance = models.IntegerField(null=True, blank=True)
    series_location = models.FloatField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="scans_uploaded"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    status_changed_at = models.DateTimeField(auto_now_add=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    # Why it was held (counts, never the text read); kept after a release, for the record.
    hold_reason = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Who holds the processing claim: the task message (Celery task id) that claimed the scan and
    # the worker (node name) that ran it. A redelivery of that message, or that worker started
    # again, means the attempt died unfinished and may be taken over at once.
    claim_token = models.CharField(max_length=64, blank=True)
    claimed_by = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, null=True, blank=True)
    outcome_reason = models.CharField(max_length=500, blank=True)
    # The question this scan is run under when a clinician re-ran it under another one than its
    # case's (cases.questions); empty: the case's question.
    task = models.CharField(max_length=32, choices=tasks.choices(), blank=True)
    anonymisation_report = models.ForeignKey(
        AnonymisationReport, on_delete=models.SET_NULL, null=True, blank=True, related_name="scans"
    )
    erased_at = models.DateTimeField(null=True, blank=True)
    erased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Taken back by its uploader or a steward (Scan.retract): out of the case, files deleted.
    retracted_at = models.DateTimeField(null=True, blank=True)
    retracted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    retraction_reason = models.CharField(max_length=500, blank=True)

    objects = ScanQuerySet.as_manager()

    class Meta:
        ordering = ["uploaded_at", "id"]
        indexes = [
            # Sweep: scans stuck in queued/processing since before a cut-off.
            models.Index(fields=["status", "status_changed_at"], name="scan_status_changed_idx"),
        ]

    def __str__(self):
        return f"Scan {self.pk} of {self.case_id}"

    @property
    def question(self) -> tasks.Task:
        """The clinical question this scan is run under: its own when re-run, else its case's."""
        return tasks.get(self.task or self.case.task)

    @property
    def is_pending(self):
        return self.status in (self.Status.CHECKING, self.Status.QUEUED, self.Status.PROCESSING)

    def pixels_hidden_from(self, user) -> bool:
        """True while this scan's pixels may show a name: not read for burned-in text yet, or held
        because text was found (or could not be ruled out) and no steward has released it. The one
        rule of preview, viewer, API image and exports; stewards see them (they decide on held scans)."""
        return self.status in Scan.PIXELS_HIDDEN_STATUSES and not is_steward(user)

    @property
    def series_description(self) -> str:
        """A DICOM slice's SeriesDescription where de-identification kept it (cases.acquisition),
        checked again as it is shown: a row stored before the check cannot show a name."""
        from .deidentification import clean_series_description

        stored = (self.acquisition or {}).get("attributes", {}).get("SeriesDescription")
        return clean_series_description(stored) or "" if stored else ""

    @property
    def latest_prediction(self):
        predictions = list(self.predictions.all())
        return max(predictions, key=lambda p: p.created_at) if predictions else None

    def check_reviewable(self):
        """Raise a Refusal if a clinician's label cannot be recorded on this scan: the one rule the
        page's review form and the API apply (both save through ReviewForm)."""
        if self.retracted_at is not None:
            raise Refusal(f"Scan {self.pk} was retracted: it is no longer part of the case.")
        if self.erased_at is not None:
            # No one can look at it any more: a label now would be a diagnosis without the image.
            raise Refusal(f"Scan {self.pk}'s image was erased: there is nothing left to review.")
        if self.outcome == Scan.Outcome.WRONG_MODALITY:
            # Not a slice the question's model reads: a diagnostic label on it would become training data.
            raise NotReviewable(
                f"Scan {self.pk} was refused as not a slice the {self.question.label} question reads: "
                "it cannot carry a diagnostic label."
            )
        self.case.check_open("review its scans")

    @property
    def is_reviewed(self):
        """Reviewed on its own or through its series: a series review answers for each slice its
        verdict covered when it was recorded (cases.worklist.SERIES_REVIEW_RULE), so it settles
        those slices as a slice review does; a slice that joined the series later is not."""
        if any(prediction.reviews.all() for prediction in self.predictions.all()):
            return True
        if self.series_id is None:
            return False
        if "series_reviewed" in self.__dict__:  # ScanQuerySet.with_series_reviewed
            return self.series_reviewed
        return series_reviews().filter(scans=self.pk).exists()

    def check_retractable(self, user, *, audit=False):
        """Raise a Refusal if ``user`` may not retract this scan now: the rule of page and API.

        Its uploader may take it back until a clinician reviews it; after that a clinical decision
        rests on it, and only a data steward may (wrong patient, say). Stewards may retract any scan.
        With ``audit`` (an attempt to retract, not a page deciding whether to offer it) the refusal
        is recorded too.
        """
        if audit:
            with AuditEvent.refusals(user, self, "scan_retract", case=self.case_id):
                return self.check_retractable(user)
        steward = is_steward(user)
        if self.uploaded_by_id != user.pk and not steward:
            raise NotAllowed(
                f"Only the clinician who uploaded scan {self.pk}, or a data steward, can retract it."
            )
        if self.is_reviewed and not steward:
            raise NotAllowed(
                f"Scan {self.pk} has been reviewed: a clinical decision rests on it, so only a data "
                "steward can retract it now."
            )
        self.case.check_open("retract its scans")
        if self.status == Scan.Status.PROCESSING:
            raise ScanBusy(
                f"Scan {self.pk} is being classified right now: retract it once it is done (a few seconds)."
            )

    def retract(self, user, reason: str):
        """Take this scan out of its case: its image and explanations leave storage; the row keeps
        its hash, who retracted it, when and why; audited. Raises a Refusal (audited too) and changes
        nothing when check_retractable says no."""
        with AuditEvent.refusals(user, self, "scan_retract", case=self.case_id):
            reason = reason.strip()
            if not reason:
                raise Refusal("Say why the scan is retracted.")
            now = timezone.now()
            with transaction.atomic():
                # A close, a review or a worker claiming the scan at the same moment: lock the case row,
                # then the scan's, and decide on what they hold now.
                case = self.case.lock()
                scan = Scan.objects.select_for_update().get(pk=self.pk)
                scan.case = case
                if scan.retracted_at is not None:
                    raise Refusal(f"Scan {self.pk} was already retracted.")
                scan.check_retractable(user)
                explained = list(scan.predictions.exclude(explanation=""))
                names = [scan.image.name] if scan.image else []
                names += [p.explanation.name for p in explained if p.explanation]
                scan.predictions.filter(pk__in=[p.pk for p in explained]).update(explanation="")
                fields = {"image": "", "retracted_at": now, "retracted_by": user, "retraction_reason": reason}
                if scan.status in (Scan.Status.CHECKING, Scan.Status.QUEUED, Scan.Status.HELD):
                    # The worker claims only checking and queued scans (stewards release only held ones).
                    fields |= {
                        "status": Scan.Status.FAILED,
                        "status_changed_at": now,
                        "failure_reason": "Retracted before it was classified.",
                    }
                Scan.objects.filter(pk=scan.pk).update(**fields)
                case.refresh_flag()
                # Its series is judged again without it (or, its last unanswered slice, at last).
                announce_series_changed(Scan, [scan.series_id])
                # The reason is free text a clinician typed: it stays on the scan row only, never in the
                # append-only audit log.
                AuditEvent.record(
                    user,
                    AuditEvent.Verb.SCAN_RETRACT,
                    scan,
                    case=case.pk,
                    files=len(names),
                    reviewed=scan.is_reviewed,
                )
        for name, value in fields.items():
            setattr(self, name, value)
        delete_stored_files(names, f"retracted scan {self.pk}")

    def preview_png(self) -> bytes | None:
        """The stored image as PNG for display (a DICOM slice rendered from its pixels); None once erased."""
        if not self.image:
            return None
        with self.image.open("rb") as stored:
            data = stored.read()
        if self.modality == Scan.Modality.DICOM:
            from .dicompreview import preview_png

            return preview_png(data)
        return data

    def release(self, user) -> bool:
        """A steward has checked a held scan's pixels: queue it for classification."""
        with transaction.atomic():
            # Two stewards releasing at once: only the update that still sees HELD enqueues.
            released = Scan.objects.filter(pk=self.pk, status=Scan.Status.HELD, erased_at=None).update(
                status=Scan.Status.QUEUED, status_changed_at=timezone.now()
            )
            if released:
                AuditEvent.record(user, AuditEvent.Verb.SCAN_RELEASE, self, case=self.case_id)
                announce_ready(Scan, [self.pk])
        if released:
            self.status = Scan.Status.QUEUED
        return bool(released)


def erase_case_images(case, user) -> list[int]:
    """Delete every stored image of ``case`` (scans and explanations); keep the rows as tombstones.

    The scan rows keep their content hash, so a later copy of the same file can be
    recognised; the erasure is audited. Returns the ids of the scans erased.
    """
    now = timezone.now()
    with transaction.atomic():
        # A worker may be classifying one of these scans: lock them, and fail the pending ones.
        scans = list(Scan.objects.select_for_update().filter(case=case, erased_at=None))
        names = [scan.image.name for scan in scans if scan.image]
        explained = list(predictions().filter(scan__in=scans).exclude(explanation=""))
        names += [p.explanation.name for p in explained if p.explanation]
        predictions().filter(pk__in=[p.pk for p in explained]).update(explanation="")
        ids = [scan.pk for scan in scans]
        Scan.objects.filter(pk__in=ids).update(image="", erased_at=now, erased_by=user)
        Scan.objects.filter(
            pk__in=ids,
            status__in=[Scan.Status.CHECKING, Scan.Status.QUEUED, Scan.Status.PROCESSING, Scan.Status.HELD],
        ).update(
            status=Scan.Status.FAILED,
            status_changed_at=now,
            failure_reason="Images erased by a data steward.",
        )
        AuditEvent.record(user, AuditEvent.Verb.ERASE, case, scans=ids, files=len(names))
    delete_stored_files(names, f"erased case {case.pseudonym}")
    return ids


def delete_stored_files(names: list[str], what: str) -> None:
    """Delete files whose rows no longer point at them (the change is committed). A storage
    outage must not turn the committed retraction or erasure into an error page: each file that
    could not be deleted is logged by name, for an operator to remove."""
    storage = Scan._meta.get_field("image").storage
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # storage backends raise OSError, botocore and other errors
            logger.exception("Could not delete %s of %s from storage; delete it by hand", name, what)


def predictions():
    """Every scan's predictions, through the relation the inference app adds to Scan
    (``Scan.predictions``): cases reads them without importing inference."""
    return Scan.predictions.rel.related_model.objects.all()


def reviews():
    """Every prediction's reviews, through the relation the inference app adds to its Prediction
    (``Prediction.reviews``): cases reads them without importing inference."""
    return predictions().model.reviews.rel.related_model.objects.all()


def model_versions():
    """The model versions predictions are made by (``Prediction.model_version``), read the same way."""
    return predictions().model.model_version.field.related_model.objects.all()
