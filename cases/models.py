"""Teams, cases, scans, reviews and the append-only audit log."""

import hashlib
import hmac
import ipaddress
import logging
import uuid
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import IntegrityError, models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from brainscan.clientip import client_ip

from .pseudonyms import generate_pseudonym
from .roles import is_steward
from .signals import announce_ready

logger = logging.getLogger(__name__)

# The request being served (set by cases.audit.AuditRequestMiddleware), so that every audit
# event names its client address, whichever page, API view, admin action or signal records it.
_serving = ContextVar("audit_request", default=None)


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


class Refusal(Exception):
    """A change the object's current state does not allow; the message is shown to the user as is.

    The pages show it as an error message; the API answers it in its error body with ``code``.
    """

    code = "conflict"


class NotReviewable(Refusal):
    code = "not_mri"


class CaseClosed(Refusal):
    code = "case_closed"


class NotAllowed(Refusal):
    code = "permission_denied"


class ScanBusy(Refusal):
    code = "scan_processing"


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

    def change(self, user, **changes) -> list[str]:
        """Set ``changes`` (status, notes) and audit it; a closed case takes no change but reopening."""
        with transaction.atomic():
            # Closing and editing at once: check the edit against the case as it is now.
            current = Case.objects.select_for_update().get(pk=self.pk)
            changed = sorted(name for name, value in changes.items() if getattr(current, name) != value)
            if changed and changes.get("status", current.status) != self.Status.OPEN:
                current.check_open("change its notes")
            for name in changed:
                setattr(self, name, changes[name])
            if changed:
                # Only these fields: a worker may be updating the flag meanwhile.
                self.save(update_fields=[*changed, "updated_at"])
            AuditEvent.record(user, AuditEvent.Verb.CASE_UPDATE, self, fields=changed)
        return changed

    def set_patient_reference(self, reference: str):
        self.patient_ref_hash = hash_patient_reference(reference) if reference.strip() else ""

    def refresh_flag(self):
        """Recompute the case flag from each scan's latest prediction (the model card's thresholds)."""
        latest = (
            predictions().filter(scan__case=self, scan__retracted_at=None).order_by("scan_id", "-created_at")
        )
        seen, suspected = set(), False
        for prediction in latest.only("scan_id", "tumour_suspected"):
            if prediction.scan_id not in seen:
                seen.add(prediction.scan_id)
                suspected |= prediction.tumour_suspected
        uncertain = self.scans.not_retracted().filter(outcome=Scan.Outcome.UNCERTAIN).exists()
        if suspected:
            flag = self.Flag.TUMOUR_SUSPECTED
        elif uncertain:
            flag = self.Flag.UNCERTAIN
        else:
            flag = self.Flag.NONE
        Case.objects.filter(pk=self.pk).update(flag=flag)
        self.flag = flag


def predictions():
    """Every scan's predictions, through the relation the inference app adds to Scan
    (``Scan.predictions``): cases reads them without importing inference."""
    return Scan.predictions.rel.related_model.objects.all()


def cases_with_consent(scope):
    """Every case whose current consent for ``scope`` is granted (analytics, training export)."""
    return Case.objects.with_consent(scope)


class Consent(models.Model):
    """The current consent of one case for one scope; its full history is in ConsentEvent.

    Change it only through ``Consent.record`` so the history and the audit trail follow.
    """

    class Scope(models.TextChoices):
        CLINICAL = "clinical", "Clinical care"
        ANALYTICS = "analytics", "Analytics and research"
        TRAINING = "training", "Model training"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        GRANTED = "granted", "Granted"
        REFUSED = "refused", "Refused"
        WITHDRAWN = "withdrawn", "Withdrawn"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="consents")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    recorded_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["case_id", "scope"]
        constraints = [
            models.UniqueConstraint(fields=["case", "scope"], name="consent_case_scope_unique"),
        ]
        indexes = [
            # cases_with_consent(scope): EXISTS (case, scope, state=granted) per case.
            models.Index(fields=["scope", "state", "case"], name="consent_scope_state_case_idx"),
        ]

    def __str__(self):
        return f"{self.case} {self.get_scope_display()}: {self.get_state_display()}"

    @classmethod
    def state_of(cls, case, scope) -> str:
        current = cls.objects.filter(case=case, scope=scope).values_list("state", flat=True).first()
        return current or cls.State.PENDING

    @classmethod
    def record(cls, case, scope, state, user, note=""):
        """Set the consent of ``case`` for ``scope``, append it to the history and audit it."""
        if scope not in cls.Scope.values:
            raise ValueError(f"Unknown consent scope {scope!r}.")
        if state not in cls.State.values:
            raise ValueError(f"Unknown consent state {state!r}.")
        now = timezone.now()
        with transaction.atomic():
            # Two stewards recording at once: lock the case so history and current state agree.
            list(Case.objects.select_for_update().filter(pk=case.pk).values_list("pk", flat=True))
            consent, _ = cls.objects.update_or_create(
                case=case,
                scope=scope,
                defaults={"state": state, "recorded_by": user, "recorded_at": now, "note": note},
            )
            ConsentEvent.objects.create(
                case=case, scope=scope, state=state, recorded_by=user, recorded_at=now, note=note
            )
            AuditEvent.record(user, AuditEvent.Verb.CONSENT, case, scope=scope, state=state)
        return consent


class ConsentEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Consent history is append-only.")

    def delete(self):
        raise PermissionError("Consent history is append-only.")


class ConsentEvent(models.Model):
    """One change of consent, append-only: the full history of who recorded what and when."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="consent_events")
    scope = models.CharField(max_length=16, choices=Consent.Scope.choices)
    state = models.CharField(max_length=16, choices=Consent.State.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    recorded_at = models.DateTimeField()
    note = models.CharField(max_length=500, blank=True)

    objects = ConsentEventQuerySet.as_manager()

    class Meta:
        ordering = ["recorded_at", "id"]
        indexes = [
            # Consent history of one case, oldest first.
            models.Index(fields=["case", "recorded_at"], name="consentevent_case_time_idx"),
        ]

    def __str__(self):
        return f"{self.recorded_at:%Y-%m-%d %H:%M} {self.case_id} {self.scope}={self.state}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Consent history is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Consent history is append-only.")


def scan_upload_path(scan, filename):
    # Never the client's file name: it often carries a patient name or hospital number.
    # ``filename`` is ours ("scan.png" or "scan.dcm"); only its extension is kept.
    extension = ".dcm" if filename.endswith(".dcm") else ".png"
    return f"scans/{scan.case_id}/{uuid.uuid4().hex}{extension}"


class AnonymisationReport(models.Model):
    """What de-identification removed or replaced in one upload: attribute names, never values."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="anonymisation_reports")
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


class Scan(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        # Identity may be in the pixels (BurnedInAnnotation YES, or text found by cases.burnedin):
        # not classified until a steward releases it.
        HELD = "held", "Held for steward review"

    class Outcome(models.TextChoices):
        CLASSIFIED = "classified", "Classified"
        UNCERTAIN = "uncertain", "Uncertain – refer"
        NOT_MRI = "not_mri", "Not classified: not a brain MRI"

    class Modality(models.TextChoices):
        IMAGE = "image", "Image (JPEG/PNG)"
        DICOM = "dicom", "DICOM slice"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="scans")
    # Empty once erased: the row stays as a tombstone with its content hash.
    image = models.FileField(upload_to=scan_upload_path, max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the stored (de-identified) file")
    modality = models.CharField(max_length=16, choices=Modality.choices, default=Modality.IMAGE)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
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
    def is_pending(self):
        return self.status in (self.Status.QUEUED, self.Status.PROCESSING)

    @property
    def latest_prediction(self):
        predictions = list(self.predictions.all())
        return max(predictions, key=lambda p: p.created_at) if predictions else None

    @property
    def is_erased(self):
        return self.erased_at is not None

    def check_reviewable(self):
        """Raise a Refusal if a clinician's label cannot be recorded on this scan: the one rule the
        page's review form and the API apply (both save through ReviewForm)."""
        if self.retracted_at is not None:
            raise Refusal(f"Scan {self.pk} was retracted: it is no longer part of the case.")
        if self.outcome == Scan.Outcome.NOT_MRI:
            # The gate found no brain MRI slice: a diagnostic label on it would become training data.
            raise NotReviewable(
                f"Scan {self.pk} was refused as not a brain MRI: it cannot carry a diagnostic label."
            )
        self.case.check_open("review its scans")

    @property
    def is_reviewed(self):
        return any(prediction.reviews.all() for prediction in self.predictions.all())

    def check_retractable(self, user):
        """Raise a Refusal if ``user`` may not retract this scan now: the rule of page and API.

        Its uploader may take it back until a clinician reviews it; after that a clinical decision
        rests on it, and only a data steward may (wrong patient, say). Stewards may retract any scan.
        """
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
        its hash, who retracted it, when and why; audited. Raises a Refusal and changes nothing when
        check_retractable says no."""
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
            if scan.status in (Scan.Status.QUEUED, Scan.Status.HELD):
                # The worker claims only queued scans (and stewards release only held ones).
                fields |= {
                    "status": Scan.Status.FAILED,
                    "status_changed_at": now,
                    "failure_reason": "Retracted before it was classified.",
                }
            Scan.objects.filter(pk=scan.pk).update(**fields)
            case.refresh_flag()
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
            from .anonymise import preview_png

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
            pk__in=ids, status__in=[Scan.Status.QUEUED, Scan.Status.PROCESSING, Scan.Status.HELD]
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


class Review(models.Model):
    """A clinician's decision on a prediction, kept beside it; the prediction is never edited."""

    class Decision(models.TextChoices):
        CONFIRMED = "confirmed", "Confirmed"
        CORRECTED = "corrected", "Corrected"

    prediction = models.ForeignKey("inference.Prediction", on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    label = models.CharField(max_length=64)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.get_decision_display()} {self.label} by {self.reviewer}"


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only.")

    def delete(self):
        raise PermissionError("Audit events are append-only.")


class AuditEvent(models.Model):
    class Verb(models.TextChoices):
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Failed login"
        LOGOUT = "logout", "Logged out"
        CASE_CREATE = "case_create", "Created case"
        CASE_VIEW = "case_view", "Viewed case"
        CASE_UPDATE = "case_update", "Updated case"
        UPLOAD = "upload", "Uploaded scans"
        UPLOAD_REJECTED = "upload_rejected", "Upload rejected"
        REVIEW = "review", "Reviewed prediction"
        EXPORT = "export", "Exported CSV"
        MODEL_SWITCH = "model_switch", "Switched active model"
        CONSENT = "consent", "Recorded consent"
        ERASE = "erase", "Erased case images"
        SCAN_RELEASE = "scan_release", "Released held scan"
        SCAN_RETRACT = "scan_retract", "Retracted scan"
        TRAINING_EXPORT = "training_export", "Exported training images"
        AUDIT_EXPORT = "audit_export", "Exported audit log"
        USER_CREATE = "user_create", "Created user account"
        USER_CHANGE = "user_change", "Changed user account"
        REFUSED = "refused", "Refused an action"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # Kept as text so the trail survives the account's deletion.
    actor_username = models.CharField(max_length=150, blank=True)
    verb = models.CharField(max_length=32, choices=Verb.choices)
    object_type = models.CharField(max_length=50, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    # The client of the request that caused the event (brainscan.clientip: X-Forwarded-For only
    # from TRUSTED_PROXIES); empty for the worker and management commands.
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Steward audit page: events newest first, filtered by verb.
            models.Index(fields=["verb", "-created_at"], name="audit_verb_created_idx"),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_username} {self.verb}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")

    @staticmethod
    @contextmanager
    def serving(request):
        """Events recorded inside this block come from ``request`` (its client address)."""
        token = _serving.set(request)
        try:
            yield
        finally:
            _serving.reset(token)

    @staticmethod
    def current_request():
        return _serving.get()

    @classmethod
    def record_refusal(cls, actor, obj, action: str, refusal: Exception, **detail):
        """An attempt the rules refused (a closed case, a refused picture, a scan being read):
        who tried what on which object, and the refusal's code, never the request's content."""
        return cls.record(
            actor, cls.Verb.REFUSED, obj, action=action, reason=getattr(refusal, "code", "refused"), **detail
        )

    @classmethod
    def record(cls, actor, verb, obj=None, **detail):
        user = actor if getattr(actor, "is_authenticated", False) else None
        return cls.objects.create(
            actor=user,
            actor_username=user.get_username() if user else "",
            verb=verb,
            object_type=obj._meta.label_lower if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            detail=_storable(detail),
            client_ip=_client_address(_serving.get()),
        )


def _client_address(request):
    if request is None:
        return None
    address = client_ip(request)
    try:
        # REMOTE_ADDR is whatever the server put there (empty on a unix socket): an address or nothing.
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def _storable(value):
    """``value`` with every NUL character shown as U+FFFD: PostgreSQL's JSON cannot hold NUL, and an
    audit event must be written whatever odd query string a client sent (keys included)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value
