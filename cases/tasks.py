"""Celery tasks of cases: pulling a study from the PACS, and the sweep of lost pulls (the work is
in cases/pacs_pull.py)."""

from celery import shared_task

from . import pacs_pull


@shared_task(bind=True, max_retries=pacs_pull.PULL_ATTEMPTS - 1)
def pull_study(self, import_id):
    # Only a transient PACS failure (refused, timed out, 5xx/429) is tried again, with backoff.
    try:
        # The task id claims the pull: only a redelivery of this message may take it over.
        pacs_pull.run_pull(
            import_id,
            last_attempt=self.request.retries >= self.max_retries,
            claim_token=self.request.id or "",
        )
    except pacs_pull.PullDeferred as deferred:
        try:
            retry = self.retry(
                countdown=pacs_pull.retry_wait(self.request.retries), exc=deferred, throw=False
            )
        except Exception:  # Reject: the broker did not take the retry, and this message is dropped
            pacs_pull.retry_not_queued(import_id, str(deferred))
            raise
        raise retry from None


@shared_task
def sweep_lost_pulls():
    return pacs_pull.sweep_lost_pulls()
