"""Celery tasks of the analytics app: thin wrappers that take ids and call analytics.stats."""

import logging

from celery import shared_task
from django.db import transaction

from .models import DatasetStats

logger = logging.getLogger(__name__)


@shared_task
def compute_dataset_stats(dataset_id):
    # numpy/scipy-heavy module: imported in the worker, not when the web process loads tasks.
    from . import stats

    result = stats.compute_dataset_stats(dataset_id)
    return result.status if result else None


def enqueue_stats(dataset) -> DatasetStats:
    """Mark the dataset's statistics pending and queue their computation after the commit."""
    stats, _ = DatasetStats.objects.get_or_create(dataset=dataset)
    DatasetStats.objects.filter(pk=stats.pk).update(status=DatasetStats.Status.PENDING, error="")
    stats.status = DatasetStats.Status.PENDING

    def publish():
        try:
            compute_dataset_stats.delay(dataset.pk)
        except Exception:
            logger.exception("Could not enqueue the statistics of dataset %s", dataset)

    transaction.on_commit(publish)
    return stats
