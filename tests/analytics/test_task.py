"""The statistics are computed by a real Celery worker on the configured broker."""

import io

import pytest
from django.core.management import call_command

from analytics.models import DatasetStats, ReferenceDataset
from tests.waiting import wait_for

pytestmark = pytest.mark.worker


def test_import_then_worker_computes_and_caches_the_statistics(running_worker, small_folder):
    call_command(
        "import_dataset", str(small_folder), "--name", "small", stdout=io.StringIO(), stderr=io.StringIO()
    )
    dataset = ReferenceDataset.objects.get(name="small")

    def done():
        stats = DatasetStats.objects.get(dataset=dataset)
        return stats if stats.status in (DatasetStats.Status.DONE, DatasetStats.Status.FAILED) else None

    stats = wait_for(done, timeout=120, message="the statistics task")
    assert stats.status == DatasetStats.Status.DONE, stats.error
    assert stats.data["class_counts"] == {"glioma": 10, "meningioma": 10, "notumor": 10, "pituitary": 10}
