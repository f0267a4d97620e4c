"""A real Celery worker on the configured broker (Redis when REDIS_URL is set) running the real
model from ml/models/ on real MRI images from ../shared."""

import math
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from cases.models import Case, Scan
from cases.uploads import clean_upload, store_scans
from inference.models import ModelVersion, Prediction
from inference.pipeline import sweep_stuck_scans
from tests.conftest import real_mri_images
from tests.waiting import wait_for

pytestmark = pytest.mark.worker


def test_worker_on_the_broker_answers_a_scan_clearly_when_no_model_is_active(running_worker, case, owner):
    path_bytes = real_mri_images(1)[0].read_bytes()
    [scan] = store_scans(case, owner, [clean_upload(SimpleUploadedFile("x.jpg", path_bytes))])
    scan = wait_for(lambda: scan_finished(scan.pk), timeout=60, message="the worker to pick up the scan")
    assert (scan.status, scan.outcome) == (Scan.Status.DONE, Scan.Outcome.NO_MODEL)
    assert "no model is active for Tumour (MRI) yet" in scan.outcome_reason and scan.attempts == 1


def scan_finished(pk):
    return (
        Scan.objects.filter(pk=pk)
        .exclude(status__in=[Scan.Status.CHECKING, Scan.Status.QUEUED, Scan.Status.PROCESSING])
        .first()
    )


def test_uploaded_mri_is_classified_by_the_worker(classifying_worker, owner_client, case):
    path = real_mri_images(1, classes=("glioma",))[0]
    response = owner_client.post(
        reverse("cases:upload", args=[case.pk]),
        {"files": [SimpleUploadedFile(path.name, path.read_bytes())]},
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )
    assert response.status_code == 201, response.content
    scan_id = response.json()["scans"][0]["id"]

    scan = wait_for(lambda: scan_finished(scan_id), timeout=180, message="the worker to classify the scan")

    assert scan.status == Scan.Status.DONE, scan.failure_reason
    assert scan.outcome in (Scan.Outcome.CLASSIFIED, Scan.Outcome.UNCERTAIN), scan.outcome_reason
    prediction = Prediction.objects.get(scan=scan)
    active = ModelVersion.active_for(settings.CLASSIFICATION_TASK)
    assert prediction.model_version == active
    assert prediction.label in active.classes
    assert set(prediction.probabilities) == set(active.classes)
    assert math.isclose(sum(prediction.probabilities.values()), 1.0, abs_tol=1e-4)
    assert prediction.confidence == pytest.approx(max(prediction.probabilities.values()))
    assert prediction.latency_ms > 0
    case.refresh_from_db()
    expected_flag = (
        Case.Flag.TUMOUR_SUSPECTED
        if prediction.tumour_suspected
        else (Case.Flag.UNCERTAIN if scan.outcome == Scan.Outcome.UNCERTAIN else Case.Flag.NONE)
    )
    assert case.flag == expected_flag
    page = owner_client.get(reverse("cases:scans_fragment", args=[case.pk])).content.decode()
    assert prediction.label in page and 'data-pending="false"' in page


def test_sweep_recovers_a_scan_whose_task_was_lost(classifying_worker, case, owner, monkeypatch):
    path = real_mri_images(1, classes=("notumor",))[0]
    lost = []
    # The broker "loses" the message published at upload time.
    monkeypatch.setattr("inference.tasks.enqueue_classification", lost.append)
    [scan] = store_scans(case, owner, [clean_upload(SimpleUploadedFile(path.name, path.read_bytes()))])
    monkeypatch.undo()
    assert lost == [scan.pk]
    Scan.objects.filter(pk=scan.pk).update(status_changed_at=timezone.now() - timedelta(hours=1))

    assert sweep_stuck_scans() == [scan.pk]

    scan = wait_for(lambda: scan_finished(scan.pk), timeout=180, message="the swept scan to be classified")
    assert scan.status == Scan.Status.DONE, scan.failure_reason
    assert Prediction.objects.filter(scan=scan).count() == 1
