"""Pulls from the PACS as rows a user follows: asked for (request_pull), run by a task
(cases/tasks.py: run_pull, tried again with backoff while the PACS is down or slow), each with its
state (queued, fetching, done, failed) and why. The fetching and storing is cases/pacs_import.py.
"""

import logging
import random
import uuid

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import AuditEvent, CaseClosed, StudyImport
from .pacs import PacsConfig, PacsUnavailable
from .pacs_import import ImportRejected, PullTakenOver, StudyNotFound, check_study_uid, import_study
from .studyimports import study_key

logger = logging.getLogger(__name__)

PULL_TASK = "cases.tasks.pull_study"
# Attempts of one pull in all while the PACS is down or slow; waits double from the first.
PULL_ATTEMPTS = 6
PULL_FIRST_WAIT_S, PULL_MAX_WAIT_S = 10, 300


class PullDeferred(Exception):
    """The PACS is unavailable for now; the pull is queued again (cases.tasks retries it)."""


def request_pull(study_uid, *, team, user, case=None, publish=True) -> StudyImport:
    """Queue a pull of the study into ``case`` (or its own case) and audit it; the task fetches
    it (``publish`` False: the caller runs it, see run_pull). Raises ValueError for a malformed
    UID, PacsUnavailable when no PACS is configured, CaseClosed for a closed case."""
    uid = check_study_uid(study_uid)
    PacsConfig.from_settings()
    if case is not None:
        case.check_open("pull a study into it")
    with transaction.atomic():
        record = StudyImport.objects.create(
            team=team,
            case=case,
            requested_by=user,
            source=StudyImport.Source.PULL,
            study_key=study_key(uid),
            study_uid=uid,
        )
        AuditEvent.record(user, AuditEvent.Verb.PACS_PULL, case, pull=record.pk, team=team.pk)
        if publish:
            transaction.on_commit(lambda: _publish(record.pk))
    return record


def _publish(import_id):
    try:
        current_app.send_task(PULL_TASK, args=[import_id])
    except Exception:
        logger.exception("Could not queue PACS pull %s", import_id)
        _finish(
            import_id,
            StudyImport.Status.FAILED,
            "The task queue is unavailable, so nothing was fetched: ask again.",
        )


def _finish(import_id, status, reason, claim_token=None):
    """Set a pending pull's outcome; with ``claim_token``, only while that attempt still holds it."""
    changes = {"status": status, "reason": reason[:500], "updated_at": timezone.now()}
    if status == StudyImport.Status.FAILED:
        changes["study_uid"] = ""
    pending = StudyImport.objects.filter(pk=import_id, status__in=StudyImport.PENDING)
    if claim_token is not None:
        pending = pending.filter(status=StudyImport.Status.FETCHING, claim_token=claim_token)
    pending.update(**changes)


def retry_not_queued(import_id, why: str):
    """The broker did not take the pull's next attempt: failed with the reason, not left queued
    with nothing to run it."""
    _finish(
        import_id,
        StudyImport.Status.FAILED,
        f"{why}. The task queue is unavailable, so it was not tried again: ask again.",
    )


def retry_wait(retries: int) -> float:
    """Seconds before the next attempt: doubled each time, capped, with jitter."""
    wait = min(PULL_MAX_WAIT_S, PULL_FIRST_WAIT_S * 2**retries)
    return wait * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security


def claim(import_id, token) -> bool:
    """Move the pull to fetching for this attempt (``token``); False when it is not this attempt's.

    A queued pull goes to the first claimer. A fetching one is taken over only by a redelivery of
    the message that claimed it (the broker redelivers only when that worker died), or when no
    message holds it (a row from before claims): a pull the sweep re-announced while its first
    message still runs is fetched by one of them, not both. A redelivery past its attempts fails.
    """
    row = StudyImport.objects.filter(pk=import_id).values("status", "claim_token", "attempts").first()
    if row is None or row["status"] not in StudyImport.PENDING:
        return False
    fetching = row["status"] == StudyImport.Status.FETCHING
    if fetching and row["claim_token"] not in ("", token):
        return False
    # Two deliveries may claim at once (a redelivery, a re-announce): only the update of the row as read wins.
    same_row = StudyImport.objects.filter(pk=import_id, **row)
    if fetching and row["attempts"] >= PULL_ATTEMPTS:
        # A pull that killed its worker on every attempt comes back each time, still fetching
        # (acks_late redelivers the message): out of attempts, it fails rather than run for ever.
        same_row.update(
            status=StudyImport.Status.FAILED,
            study_uid="",
            reason=_gave_up(row["attempts"]),
            updated_at=timezone.now(),
        )
        logger.warning("PACS pull %s given up after %s attempts", import_id, row["attempts"])
        return False
    return bool(
        same_row.update(
            status=StudyImport.Status.FETCHING,
            attempts=F("attempts") + 1,
            claim_token=token,
            updated_at=timezone.now(),
        )
    )


def _gave_up(attempts):
    return f"Gave up after {attempts} attempts: the worker fetching it was lost each time."


def run_pull(import_id, *, last_attempt=False, claim_token=""):
    """One attempt at a queued pull, by the task message ``claim_token`` (none: a fresh claim of
    its own); returns the row, or None if it is gone, no longer pending or another attempt's.
    A transient PACS failure raises PullDeferred (queued again, with the reason) unless this is
    the last attempt; every other failure marks it failed with the reason."""
    token = claim_token or uuid.uuid4().hex
    if not claim(import_id, token):
        return None
    record = StudyImport.objects.select_related("team", "case", "requested_by").get(pk=import_id)
    # A re-announced pull (the sweep) starts at Celery's retry 0: its recorded attempts bound it.
    last_attempt = last_attempt or record.attempts >= PULL_ATTEMPTS
    try:
        import_study(
            record.study_uid, team=record.team, user=record.requested_by, case=record.case, record=record
        )
    except PullTakenOver:
        logger.info("PACS pull %s: this attempt's result discarded (handed to another)", import_id)
        return None
    except PacsUnavailable as error:
        if error.transient and not last_attempt:
            reason = f"{error}. Trying again (attempt {record.attempts})."
            _finish(import_id, StudyImport.Status.QUEUED, reason, token)
            raise PullDeferred(str(error)) from None
        reason = f"{error} (after {record.attempts} attempt(s))."
        _finish(import_id, StudyImport.Status.FAILED, reason, token)
    except (StudyNotFound, ImportRejected, CaseClosed, ValueError) as error:
        _finish(import_id, StudyImport.Status.FAILED, str(error), token)
    except Exception:
        logger.exception("PACS pull %s failed", import_id)
        reason = "An unexpected error stopped the pull; it is logged."
        _finish(import_id, StudyImport.Status.FAILED, reason, token)
        raise
    record.refresh_from_db()
    return record


def sweep_lost_pulls(now=None) -> list[int]:
    """Pulls left queued or fetching longer than PACS_PULL_LOST_AFTER (their message lost with
    the broker, or their worker dead and the message not redelivered): handed out again and
    re-announced while they have attempts left, failed with the reason once they have none.
    Returns the ids re-announced; one the broker refuses stays queued for the next sweep."""
    now = now or timezone.now()
    lost = StudyImport.objects.filter(
        source=StudyImport.Source.PULL,
        status__in=StudyImport.PENDING,
        updated_at__lt=now - settings.PACS_PULL_LOST_AFTER,
    )
    handed_out = []
    for row in lost.values("pk", "status", "claim_token", "attempts", "updated_at"):
        # Conditional on the row as read: its worker may finish it, or a late message claim it.
        same_row = StudyImport.objects.filter(**row)
        if row["attempts"] >= PULL_ATTEMPTS:
            reason = (
                f"Gave up after {row['attempts']} attempts: the pull was lost each time (worker or message)."
            )
            same_row.update(status=StudyImport.Status.FAILED, study_uid="", reason=reason, updated_at=now)
            logger.warning("PACS pull %s given up by the sweep after %s attempts", row["pk"], row["attempts"])
        elif same_row.update(status=StudyImport.Status.QUEUED, claim_token="", updated_at=now):
            handed_out.append(row["pk"])
    announced = []
    for import_id in handed_out:
        try:
            current_app.send_task(PULL_TASK, args=[import_id])
        except Exception:
            # The broker is down: each further try would wait its timeout too. Still queued, the
            # rest are re-announced by a later sweep.
            logger.exception("Could not re-announce PACS pull %s; a later sweep will.", import_id)
            break
        announced.append(import_id)
    if announced:
        logger.info("Sweep re-announced %d lost PACS pull(s): %s", len(announced), announced)
    return announced
