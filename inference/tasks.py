"""Celery tasks: thin wrappers that take ids and call the plain functions in pipeline.py."""

import logging

from celery import shared_task
from celery.signals import worker_process_init, worker_ready
from django.conf import settings

from cases.pacs import PacsUnavailable

from . import pipeline, reportback
from .models import SeriesVerdict

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    autoretry_for=(pipeline.TransientScanError,),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
)
def classify_scan(self, scan_id):
    # The task id claims the scan: a redelivery of this message after a crash may take it over.
    return pipeline.classify_scan(
        scan_id, claim_token=self.request.id or "", worker=self.request.hostname or ""
    )


@shared_task(bind=True, name=reportback.TASK_NAME)
def report_series(self, verdict_id):
    """Send a series verdict to the PACS; a transient failure (refused, timeout, 5xx) is tried
    again with backoff and jitter, PACS_REPORT_ATTEMPTS times in all, each attempt recorded."""
    allowed = settings.PACS_REPORT_ATTEMPTS
    # A message redelivered after its worker died starts at retries 0 again: the attempts recorded
    # on the verdict bound it, so it cannot loop past PACS_REPORT_ATTEMPTS.
    made, state = reportback.attempts_made(verdict_id)
    if state == SeriesVerdict.Report.SENT:
        # Redelivered after the PACS took it (its worker died before the ack): once is enough.
        logger.info(
            "Report of series verdict %s already sent; its redelivered message is dropped", verdict_id
        )
        return []
    if made >= allowed:
        reportback.give_up(verdict_id, made, allowed)
        return []
    final = max(self.request.retries, made) + 1 >= allowed
    try:
        return reportback.send(verdict_id, final=final, attempts_allowed=allowed)
    except reportback.NothingToReport:
        return []
    except PacsUnavailable as error:
        if final or not error.transient:
            return []
        countdown = reportback.backoff_s(self.request.retries)
        try:
            retry = self.retry(exc=error, countdown=countdown, max_retries=allowed - 1, throw=False)
        except Exception:  # Reject: the broker did not take the retry, and this message is dropped
            reportback.retry_not_queued(verdict_id, error, self.request.retries + 1)
            raise
        raise retry from None


@shared_task
def sweep_stuck_scans():
    return pipeline.sweep_stuck_scans()


def enqueue_classification(scan_id) -> bool:
    """Publish the classification task; False when the broker did not take it. A broker outage is
    survivable: the scan stays queued and the sweep re-enqueues it."""
    try:
        classify_scan.delay(scan_id)
    except Exception:
        logger.exception("Could not enqueue scan %s; the sweep will re-enqueue it.", scan_id)
        return False
    return True


def enqueue_classifications(scan_ids):
    """Publish one task per scan, stopping at the first the broker refuses: it is down, and each
    further try would cost the caller (an upload request) another connection timeout."""
    for position, scan_id in enumerate(scan_ids):
        if enqueue_classification(scan_id) is False:
            if left := len(scan_ids) - position - 1:
                logger.warning("Broker unavailable: %d more scan(s) left queued for the sweep.", left)
            return


def publish_ready_scans(sender, scan_ids, **kwargs):
    """cases.signals.scans_ready: publish the scans' tasks (after their transaction committed)."""
    enqueue_classifications(scan_ids)


def _warm_up(**kwargs):
    from django.db import close_old_connections

    from . import runtime

    try:
        active = runtime.warm_up()
        logger.info("Worker warmed up with model %s", active)
    except Exception:
        # A missing or broken model must not stop the worker: scans fail with the reason instead.
        logger.exception("Could not load the active model at worker start")
    finally:
        close_old_connections()


# Load the model when each worker process starts, not on its first scan.
worker_process_init.connect(_warm_up, weak=False)


def _take_over_previous_run(sender, **kwargs):
    """This worker starts under its node name: scans its previous run had in flight are re-queued."""
    from django.db import connections

    try:
        pipeline.requeue_claims_of(sender.hostname)
    except Exception:
        logger.exception("Could not re-queue the scans of this worker's previous run; the sweep will.")
    finally:
        # The main process forks pool processes later: they must not share its connection.
        connections.close_all()


# Runs once, in the main process, before the worker takes its first message.
worker_ready.connect(_take_over_previous_run, weak=False)
