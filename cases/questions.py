"""Asking a scan the question that fits: a scan refused for its modality (or left without a model)
can move its whole case to another clinical question, or be re-run alone under another one.
Both put the scan back in the queue; the worker runs it by that question's active model."""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ml import tasks

from .auditlog import AuditEvent
from .refusals import Refusal
from .scans import Scan
from .signals import announce_ready

# Outcomes that answered no question: re-asking them loses no clinical answer.
UNANSWERED = (Scan.Outcome.WRONG_MODALITY, Scan.Outcome.NO_MODEL)


def fitting_task(scan) -> tasks.Task | None:
    """The first other question that reads the modality a refused scan looked like (from its
    outcome reason), to offer in one click; None when nothing fits or nothing was refused."""
    if scan.outcome != Scan.Outcome.WRONG_MODALITY:
        return None
    reason = scan.outcome_reason
    found = next(
        (
            m
            for m, name in tasks.MODALITY_NAMES.items()
            if f"a {name} slice" in reason or f"an {name} slice" in reason
        ),
        None,
    )
    current = scan.question
    for task in tasks.TASKS.values():
        if task.name != current.name and task.modality == found and task.flagged == current.flagged:
            return task
    for task in tasks.TASKS.values():
        if task.name != current.name and task.modality == found:
            return task
    return None


def _check_reaskable(scan, task: str):
    if scan.retracted_at is not None:
        raise Refusal(f"Scan {scan.pk} was retracted: it is no longer part of the case.")
    scan.case.check_open("run its scans again")
    if scan.status != Scan.Status.DONE:
        raise Refusal(f"Scan {scan.pk} is {scan.get_status_display().lower()}: run it again once it is done.")
    if scan.is_reviewed:
        raise Refusal(f"Scan {scan.pk} has been reviewed: its answer stands under {scan.question.label}.")
    if task not in tasks.TASKS:
        raise Refusal(f"Unknown clinical question {task!r}.")


def _requeue(scan_ids, now):
    """Back to the queue, conditional on the scan still being done (a concurrent re-run)."""
    queued = Scan.objects.filter(pk__in=scan_ids, status=Scan.Status.DONE).update(
        status=Scan.Status.QUEUED,
        status_changed_at=now,
        outcome=None,
        outcome_reason="",
        failure_reason="",
        attempts=0,
        claim_token="",
    )
    if queued:
        announce_ready(Scan, list(scan_ids))
    return queued


def run_when_a_model_arrives(task: str, user=None, model="") -> list[int]:
    """A model for ``task`` became active (``model``, its name): run again every scan that was left
    without one (no_model) under that question, in open cases; audited once per case. Returns the
    ids re-queued. Idempotent: an answered scan is done with another outcome and stays as it is."""
    waiting = (
        Scan.objects.not_retracted()
        .filter(status=Scan.Status.DONE, outcome=Scan.Outcome.NO_MODEL, erased_at=None)
        .filter(Q(task=task) | Q(task="", case__task=task))
        .exclude(case__status="closed")
    )
    by_case = {}
    for scan in waiting.select_related("case"):
        by_case.setdefault(scan.case, []).append(scan.pk)
    requeued, now = [], timezone.now()
    for case, scan_ids in by_case.items():
        # A clinician re-running one of them at the same moment: _requeue moves only scans still done.
        if _requeue(scan_ids, now):
            requeued += scan_ids
            AuditEvent.record(
                user,
                AuditEvent.Verb.SCAN_RERUN,
                case,
                scans=scan_ids,
                task={"to": task},
                model_activated=model,
            )
    return requeued


def rerun_under(scan, user, task: str):
    """Run this one scan again under ``task``'s model (its case keeps its question); audited."""
    with AuditEvent.refusals(user, scan, "scan_rerun", case=scan.case_id), transaction.atomic():
        # A worker finishing or a teammate re-running it at the same moment: decide on the locked rows.
        case = scan.case.lock()
        locked = Scan.objects.select_for_update().get(pk=scan.pk)
        locked.case = case
        _check_reaskable(locked, task)
        previous = locked.task or case.task
        Scan.objects.filter(pk=scan.pk).update(task="" if task == case.task else task)
        _requeue([scan.pk], timezone.now())
        AuditEvent.record(
            user, AuditEvent.Verb.SCAN_RERUN, scan, case=case.pk, task={"from": previous, "to": task}
        )
    scan.refresh_from_db()
    return scan


def move_case_to(scan, user, task: str) -> list[int]:
    """Move the scan's case to the question ``task`` (Case.change: refused once a scan is
    reviewed, audited as a case update) and run again every scan of it that answered nothing."""
    with AuditEvent.refusals(user, scan, "scan_rerun", case=scan.case_id):
        _check_reaskable(scan, task)
    case = scan.case
    # Outside the transaction below: a refused change is audited, and that record must stay.
    case.change(user, task=task)
    with transaction.atomic():
        refused = list(
            case.scans.not_retracted()
            .filter(status=Scan.Status.DONE, outcome__in=UNANSWERED)
            .values_list("pk", flat=True)
        )
        Scan.objects.filter(pk__in=refused).update(task="")
        _requeue(refused, timezone.now())
        AuditEvent.record(
            user, AuditEvent.Verb.SCAN_RERUN, scan, case=case.pk, task={"to": task}, scans=refused, moved=True
        )
    scan.refresh_from_db()
    return refused
