"""Classify one scan and sweep lost ones: the plain functions the Celery tasks call."""

import logging
from math import floor

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from cases import burnedin
from cases.models import Case, Scan
from cases.signals import announce_ready
from ml.preprocess import dicom_pixels

from . import runtime
from .models import ModelVersion, Prediction

logger = logging.getLogger(__name__)

# Errors worth retrying: the database or storage hiccuped, not the scan or the model.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


class TransientScanError(Exception):
    """Classification hit a transient error; the scan went back to queued for a retry."""


def _gave_up(attempts):
    return f"Gave up after {attempts} attempts (worker lost or timed out)."


def claim(scan_id, token="", worker="", text_check=False) -> bool:
    """Move the scan to processing for this task message (``token``, its Celery task id) run by
    ``worker``; False when the scan is not this message's to classify. With ``text_check``: claim
    a scan awaiting its burned-in text check instead (check_text).

    A queued scan goes to the first claimer. A scan in processing is taken over only by a
    redelivery of the message that claimed it: the broker redelivers a message only when the
    worker running it died before acknowledging it, so that attempt is over.

    A scan awaiting its text check (CHECKING) stays CHECKING while claimed, so that its pixels stay
    hidden until the check passes it (cases.burnedin.settle queues it): its claim token says
    whether an attempt holds it (none: the upload, or the sweep, handed it out).
    """
    row = Scan.objects.filter(pk=scan_id).values("status", "claim_token", "attempts").first()
    if row is None:
        return False
    checking = row["status"] == Scan.Status.CHECKING
    if checking != text_check:
        return False
    busy = Scan.Status.CHECKING if checking else Scan.Status.PROCESSING
    held_by = row["claim_token"] if row["status"] == busy else ""
    redelivered = bool(token) and bool(held_by) and held_by == token
    claimable = row["status"] == Scan.Status.QUEUED or (checking and not held_by)
    if not claimable and not redelivered:
        return False
    # Two deliveries may claim at once (redelivery, sweep): only the update of the row as read wins.
    same_row = Scan.objects.filter(
        pk=scan_id, status=row["status"], attempts=row["attempts"], claim_token=row["claim_token"]
    )
    if redelivered and row["attempts"] >= settings.SCAN_MAX_ATTEMPTS:
        # A scan that kills its worker every time must not be redelivered forever; one never
        # checked for text is held for a steward, not failed (a failed scan shows its pixels).
        same_row.update(status_changed_at=timezone.now(), **_given_up(checking, row["attempts"]))
        logger.warning("Scan %s given up: %s", scan_id, _gave_up(row["attempts"]))
        return False
    return bool(
        same_row.update(
            status=busy,
            status_changed_at=timezone.now(),
            attempts=F("attempts") + 1,
            claim_token=token,
            claimed_by=worker,
        )
    )


def _given_up(checking, attempts) -> dict:
    if checking:
        return {"status": Scan.Status.HELD, "hold_reason": burnedin.gave_up_reason(attempts)}
    return {"status": Scan.Status.FAILED, "failure_reason": _gave_up(attempts)}


def _set_status(scan_id, status, expected=Scan.Status.PROCESSING, **fields):
    return Scan.objects.filter(pk=scan_id, status=expected).update(
        status=status, status_changed_at=timezone.now(), **fields
    )


def fail(scan_id, reason):
    logger.warning("Scan %s failed: %s", scan_id, reason)
    _set_status(scan_id, Scan.Status.FAILED, failure_reason=reason[:500])
    _series_verdict(scan_id)


def check_text(scan_id, claim_token="", worker="") -> str | None:
    """The worker's first step on a scan stored CHECKING: read it for burned-in text (cases.burnedin)
    and hold it for a steward (HELD) or queue it for classification (QUEUED, under this claim).
    None if it was not this message's to check. Fails safe: a check that fails holds the scan."""
    if not claim(scan_id, claim_token, worker, text_check=True):
        return None
    try:
        scan = Scan.objects.get(pk=scan_id)
        with scan.image.open("rb") as stored:
            data = stored.read()
        screening = burnedin.screen_stored(data, scan.modality == Scan.Modality.DICOM)
        if not burnedin.settle(scan_id, claim_token, screening):
            return None
        logger.info("Scan %s text check: %s", scan_id, "held" if screening.held else "passed")
        return Scan.Status.HELD if screening.held else Scan.Status.QUEUED
    except TRANSIENT_ERRORS as error:
        try:  # unclaimed again, for the retry or the sweep
            _set_status(scan_id, Scan.Status.CHECKING, expected=Scan.Status.CHECKING, claim_token="")
        except DatabaseError:
            logger.exception("Could not hand scan %s back; the sweep will.", scan_id)
        raise TransientScanError(f"{type(error).__name__}: {error}") from error
    except Scan.DoesNotExist:
        return None
    except Exception as error:
        logger.exception("Scan %s: text check failed unexpectedly", scan_id)
        # Held, never failed or passed: a failed scan's pixels are shown.
        reason = f"{burnedin.UNAVAILABLE_REASON} (the check failed: {type(error).__name__})"
        _set_status(scan_id, Scan.Status.HELD, expected=Scan.Status.CHECKING, hold_reason=reason[:200])
        return Scan.Status.HELD


def classify_scan(scan_id, claim_token="", worker="") -> str | None:
    """Read for burned-in text when not yet read (check_text), then claim, classify and record one
    scan. Returns the scan's new status (HELD when the text check holds it), or None if not claimed."""
    if Scan.objects.filter(pk=scan_id, status=Scan.Status.CHECKING).exists():
        checked = check_text(scan_id, claim_token, worker)
        if checked != Scan.Status.QUEUED:
            return checked
    if not claim(scan_id, claim_token, worker):
        return None
    try:
        scan = Scan.objects.select_related("case").get(pk=scan_id)
        task = scan.question
        with scan.image.open("rb") as stored:
            data = stored.read()
        if scan.modality == Scan.Modality.DICOM:
            # Rescaled and windowed pixels of the de-identified slice; ml.preprocess does the rest.
            data = dicom_pixels(data)
        # Modality first, whatever the question: a CT slice is never answered by an MRI model.
        found = runtime.modality_of(data)
        if found is not None and found[0] != task.modality:
            modality, sure = found
            reason = (
                f"{task.wrong_modality_reason(modality)} (modality check {floor(100 * sure)}% {modality})"
            )
            return _answer_nothing(scan, Scan.Outcome.WRONG_MODALITY, reason, claim_token)
        model_version = ModelVersion.active_for(task.name)
        if model_version is None:
            return _answer_nothing(scan, Scan.Outcome.NO_MODEL, task.no_model_reason(), claim_token)
        try:
            result = runtime.classify_image(model_version, data)
        except runtime.model_load_errors() as error:
            fail(scan_id, f"The model {model_version} could not be loaded: {error}")
            return Scan.Status.FAILED
        if not _record(scan, model_version, result, claim_token):
            return None
        return Scan.Status.DONE
    except TRANSIENT_ERRORS as error:
        # Hand the scan back so the retry (or the sweep) can claim it again.
        try:
            _set_status(scan_id, Scan.Status.QUEUED)
        except DatabaseError:
            logger.exception("Could not requeue scan %s; the sweep will.", scan_id)
        raise TransientScanError(f"{type(error).__name__}: {error}") from error
    except Scan.DoesNotExist:
        return None
    except Exception as error:
        logger.exception("Scan %s failed unexpectedly", scan_id)
        fail(scan_id, f"Classification failed ({type(error).__name__}).")
        return Scan.Status.FAILED


def _still_ours(scan, claim_token) -> Case | None:
    """Lock the scan's case and tell whether this attempt still holds the scan's claim (the
    case, locked) or not (None). Call inside a transaction."""
    # Scans of one case finishing together: serialise their flag updates on the case row.
    case = Case.objects.select_for_update().get(pk=scan.case_id)
    # While this attempt ran, the sweep or a restarted worker may have handed the scan to
    # another attempt, or its uploader retracted it (its files are gone): then this result
    # is stale and nothing of it is written (no prediction, no explanation file).
    still_ours = Scan.objects.select_for_update().filter(
        pk=scan.pk, status=Scan.Status.PROCESSING, claim_token=claim_token, retracted_at=None
    )
    if not still_ours.exists():
        logger.warning(
            "Scan %s: result of a stale attempt discarded (claim taken over or retracted)", scan.pk
        )
        return None
    return case


def _answer_nothing(scan, outcome, reason, claim_token=""):
    """Done, with no prediction: the slice is not the question's modality, or no model answers
    the question yet. Not a failure: nothing retries it; a clinician re-asks it (cases.questions)."""
    with transaction.atomic():
        case = _still_ours(scan, claim_token)
        if case is None:
            return None
        _set_status(
            scan.pk, Scan.Status.DONE, outcome=outcome, outcome_reason=reason[:500], failure_reason=""
        )
        case.refresh_flag()
    logger.info("Scan %s not classified (%s): %s", scan.pk, outcome, reason)
    _series_verdict(scan.pk)
    return Scan.Status.DONE


def _record(scan, model_version, result, claim_token="") -> bool:
    """Save the result, if this attempt still holds the scan's claim; False when it does not."""
    # The model's own gate refusing the picture is the same answer as the modality check's.
    outcome = Scan.Outcome.WRONG_MODALITY if result.outcome == "not_mri" else result.outcome
    # Only a task with tumour classes flags a tumour (a dementia grade is not one).
    flags = bool(scan.question.flagged)
    with transaction.atomic():
        case = _still_ours(scan, claim_token)
        if case is None:
            return False
        prediction, created = Prediction.objects.get_or_create(
            scan=scan,
            model_version=model_version,
            defaults={
                "label": result.label,
                "confidence": float(result.confidence),
                "probabilities": {k: float(v) for k, v in result.probabilities.items()},
                "tumour_probability": float(result.tumour_probability) if flags else None,
                "tumour_suspected": flags and bool(result.tumour_suspected),
                "latency_ms": float(result.latency_ms),
            },
        )
        if created and result.explanation_png:
            prediction.explanation.save(
                f"{scan.pk}-{model_version.pk}.png", ContentFile(result.explanation_png)
            )
        _set_status(
            scan.pk,
            Scan.Status.DONE,
            outcome=outcome,
            outcome_reason=result.outcome_reason or "",
            failure_reason="",
        )
        case.refresh_flag()
    _series_verdict(scan.pk)
    return True


def _series_verdict(scan_id):
    """The end of a scan's classification: its series' verdict, once its last slice is answered
    (inference/series_verdict.py; it never fails the scan)."""
    from .series_verdict import after_scan

    after_scan(scan_id)


def sweep_stuck_scans(now=None) -> list[int]:
    """Re-enqueue scans left in queued/processing past their timeout; give up after max attempts.

    Returns the ids re-enqueued. A crashed worker or a lost broker message leaves a scan
    stuck; this is how it gets classified anyway.
    """
    now = now or timezone.now()
    queued_cutoff = now - settings.SCAN_QUEUED_TIMEOUT
    processing_cutoff = now - settings.SCAN_PROCESSING_TIMEOUT
    unclaimed_check = Q(status=Scan.Status.CHECKING, claim_token="")
    stuck = Scan.objects.filter(
        Q(status=Scan.Status.QUEUED, status_changed_at__lt=queued_cutoff)
        | Q(status=Scan.Status.PROCESSING, status_changed_at__lt=processing_cutoff)
        | (unclaimed_check & Q(status_changed_at__lt=queued_cutoff))
        | (Q(status=Scan.Status.CHECKING, status_changed_at__lt=processing_cutoff) & ~unclaimed_check)
    )
    requeued = _requeue(stuck, now)
    if requeued:
        logger.info("Sweep re-enqueued %d stuck scan(s): %s", len(requeued), requeued)
    return requeued


def requeue_claims_of(worker, now=None) -> list[int]:
    """Re-enqueue the scans in processing claimed by ``worker`` (a node name), called as that
    worker starts: it has claimed nothing yet, so these are what its previous run (killed,
    crashed) left unfinished, and they need not wait for the sweep's processing timeout."""
    if not worker:
        return []
    claimed = Q(status=Scan.Status.PROCESSING) | (Q(status=Scan.Status.CHECKING) & ~Q(claim_token=""))
    requeued = _requeue(Scan.objects.filter(claimed, claimed_by=worker), now)
    if requeued:
        logger.info(
            "Worker %s re-enqueued %d scan(s) of its previous run: %s", worker, len(requeued), requeued
        )
    return requeued


def _requeue(stuck, now=None) -> list[int]:
    """Put these scans back in the queue and announce them ready (inference publishes them after
    the commit); fail the ones out of attempts. A scan not yet checked for text goes back to
    CHECKING unclaimed, or is held when out of attempts. Returns the ids re-enqueued."""
    now = now or timezone.now()
    requeued = []
    for scan_id, status, changed_at, attempts in stuck.values_list(
        "pk", "status", "status_changed_at", "attempts"
    ):
        # Conditional on the row being unchanged: a worker may finish it meanwhile.
        same_row = Scan.objects.filter(pk=scan_id, status=status, status_changed_at=changed_at)
        checking = status == Scan.Status.CHECKING
        if attempts >= settings.SCAN_MAX_ATTEMPTS:
            same_row.update(status_changed_at=now, **_given_up(checking, attempts))
            continue
        # A lost check stays CHECKING (its pixels hidden), unclaimed; anything else is queued.
        handed_out = {"claim_token": ""} if checking else {"status": Scan.Status.QUEUED}
        if same_row.update(status_changed_at=now, **handed_out):
            requeued.append(scan_id)
    if requeued:
        announce_ready(Scan, requeued)
    return requeued
