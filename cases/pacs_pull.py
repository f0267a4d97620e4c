"""Pulls from the PACS as rows a user follows: asked for (request_pull), run by a task
(cases/tasks.py: run_pull, tried again with backoff while the PACS is down or slow), each with its
state (queued, fetching, done, failed) and why. The fetching and storing is cases/pacs_import.py.
"""

import logging
import random

from celery import current_app
from django.db import transaction
from django.db.models import F

from .models import AuditEvent, CaseClosed, StudyImport
from .pacs import PacsConfig, PacsUnavailable
from .pacs_import import ImportRejected, StudyNotFound, check_study_uid, import_study
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


def _finish(import_id, status, reason):
    changes = {"status": status, "reason": reason[:500]}
    if status == StudyImport.Status.FAILED:
        changes["study_uid"] = ""
    StudyImport.objects.filter(pk=import_id, status__in=StudyImport.PENDING).update(**changes)


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


def run_pull(import_id, *, last_attempt=False):
    """One attempt at a queued pull; returns the row, or None if it is gone or no longer pending.
    A transient PACS failure raises PullDeferred (queued again, with the reason) unless this is
    the last attempt; every other failure marks it failed with the reason."""
    # A pull that killed its worker on every attempt comes back each time, still fetching (acks_late
    # redelivers the message): out of attempts, it fails rather than run for ever.
    given_up = StudyImport.objects.filter(
        pk=import_id, status=StudyImport.Status.FETCHING, attempts__gte=PULL_ATTEMPTS
    ).update(
        status=StudyImport.Status.FAILED,
        study_uid="",
        reason=f"Gave up after {PULL_ATTEMPTS} attempts: the worker fetching it was lost each time.",
    )
    if given_up:
        logger.warning("PACS pull %s given up after %s attempts", import_id, PULL_ATTEMPTS)
        return None
    # A redelivered message (its worker died mid-pull) finds it fetching and takes it over.
    claimed = StudyImport.objects.filter(pk=import_id, status__in=StudyImport.PENDING).update(
        status=StudyImport.Status.FETCHING, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    record = StudyImport.objects.select_related("team", "case", "requested_by").get(pk=import_id)
    try:
        import_study(
            record.study_uid, team=record.team, user=record.requested_by, case=record.case, record=record
        )
    except PacsUnavailable as error:
        if error.transient and not last_attempt:
            _finish(
                import_id, StudyImport.Status.QUEUED, f"{error}. Trying again (attempt {record.attempts})."
            )
            raise PullDeferred(str(error)) from None
        _finish(import_id, StudyImport.Status.FAILED, f"{error} (after {record.attempts} attempt(s)).")
    except (StudyNotFound, ImportRejected, CaseClosed, ValueError) as error:
        _finish(import_id, StudyImport.Status.FAILED, str(error))
    except Exception:
        logger.exception("PACS pull %s failed", import_id)
        _finish(import_id, StudyImport.Status.FAILED, "An unexpected error stopped the pull; it is logged.")
        raise
    record.refresh_from_db()
    return record
