"""The worker's first step: a scan stored CHECKING is read for burned-in text, then held for a
steward or queued and classified; its claim, the sweep and a restarted worker keep it hidden
(CHECKING or HELD, never FAILED or passed unread) whatever goes wrong."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import OperationalError
from django.utils import timezone

from cases import burnedin
from cases.models import AnonymisationReport, Scan
from inference import pipeline
from inference.models import Prediction
from tests.factories import ModelVersionFactory, ScanFactory

pytestmark = pytest.mark.django_db


def result():
    return SimpleNamespace(
        outcome="classified",
        outcome_reason="",
        label="glioma",
        confidence=0.9,
        probabilities={"glioma": 0.9, "meningioma": 0.05, "notumor": 0.03, "pituitary": 0.02},
        tumour_probability=0.97,
        tumour_suspected=True,
        latency_ms=42.0,
        explanation_png=None,
    )


@pytest.fixture
def model_calls(monkeypatch):
    ModelVersionFactory(is_active=True)
    calls = []
    monkeypatch.setattr(
        "inference.runtime.classify_image", lambda version, data: calls.append(data) or result()
    )
    return calls


@pytest.fixture
def text_found(monkeypatch):
    reads = []

    def check(picture, timeout=None):
        reads.append(picture.size)
        return burnedin.TextCheck(True, "text found in the picture (4 words)", 4, 0.01)

    monkeypatch.setattr(burnedin, "check", check)
    return reads


def checking_scan(case, **fields):
    scan = ScanFactory(case=case, status=Scan.Status.CHECKING, **fields)
    report = AnonymisationReport.objects.create(
        case=case, uploaded_by=case.created_by, files=[{"scan": scan.pk, "text_check": "pending"}]
    )
    Scan.objects.filter(pk=scan.pk).update(anonymisation_report=report)
    return scan


def test_a_scan_that_passes_the_check_is_classified_by_the_same_message(case, model_calls):
    scan = checking_scan(case)
    assert pipeline.classify_scan(scan.pk, "task-1", "celery@a") == Scan.Status.DONE
    scan.refresh_from_db()
    assert (scan.status, scan.attempts, scan.claim_token) == (Scan.Status.DONE, 1, "task-1")
    assert Prediction.objects.filter(scan=scan).count() == 1 and len(model_calls) == 1
    entry = AnonymisationReport.objects.get().files[0]
    assert entry["held"] is False and entry["text_check"]["words"] >= 0


def test_a_scan_showing_text_is_held_by_the_worker_and_never_classified(case, model_calls, text_found):
    scan = checking_scan(case)
    assert pipeline.classify_scan(scan.pk, "task-1") == Scan.Status.HELD
    scan.refresh_from_db()
    assert (scan.status, scan.hold_reason) == (Scan.Status.HELD, "text found in the picture (4 words)")
    assert scan.attempts == 0  # a steward's release starts classification afresh
    assert model_calls == [] and text_found == [(64, 64)]
    assert AnonymisationReport.objects.get().files[0] == {
        "scan": scan.pk,
        "held": True,
        "text_check": {"words": 4, "held": True, "ms": 10.0},
    }
    assert pipeline.classify_scan(scan.pk, "task-2") is None  # a held scan waits for a steward


def test_a_check_that_fails_holds_the_scan_it_never_fails_or_passes_it(case, model_calls, monkeypatch):
    def broken(data, is_dicom):
        raise ValueError("unreadable")

    monkeypatch.setattr(burnedin, "screen_stored", broken)
    scan = checking_scan(case)
    assert pipeline.classify_scan(scan.pk, "task-1") == Scan.Status.HELD
    scan.refresh_from_db()
    assert scan.status == Scan.Status.HELD
    assert scan.hold_reason == "text check unavailable (the check failed: ValueError)"
    assert model_calls == []


def test_a_transient_error_during_the_check_hands_the_scan_back_unclaimed(case, monkeypatch):
    def flaky(data, is_dicom):
        raise OperationalError("database restarting")

    monkeypatch.setattr(burnedin, "screen_stored", flaky)
    scan = checking_scan(case)
    with pytest.raises(pipeline.TransientScanError):
        pipeline.classify_scan(scan.pk, "task-1", "celery@a")
    scan.refresh_from_db()
    assert (scan.status, scan.claim_token, scan.attempts) == (Scan.Status.CHECKING, "", 1)
    assert pipeline.claim(scan.pk, "task-2", text_check=True)


def test_a_claimed_check_is_taken_only_by_a_redelivery_of_its_message(case):
    scan = checking_scan(case)
    assert pipeline.claim(scan.pk, "task-1", "celery@a") is False  # classification cannot claim it
    assert pipeline.claim(scan.pk, "task-1", "celery@a", text_check=True)
    assert pipeline.claim(scan.pk, "task-2", "celery@b", text_check=True) is False
    assert pipeline.claim(scan.pk, "task-1", "celery@a", text_check=True)  # redelivered after a crash
    scan.refresh_from_db()
    assert (scan.status, scan.claim_token, scan.attempts) == (Scan.Status.CHECKING, "task-1", 2)


def test_a_check_that_keeps_killing_its_worker_is_held_not_failed(case, settings):
    scan = checking_scan(case)
    claims = [
        pipeline.claim(scan.pk, "task-1", "celery@a", text_check=True)
        for _ in range(settings.SCAN_MAX_ATTEMPTS + 1)
    ]
    assert claims == [True] * settings.SCAN_MAX_ATTEMPTS + [False]
    scan.refresh_from_db()
    assert scan.status == Scan.Status.HELD
    assert scan.hold_reason == f"text check unavailable (gave up after {settings.SCAN_MAX_ATTEMPTS} attempts)"


def test_sweep_hands_lost_checks_out_again_and_leaves_running_ones(case, monkeypatch, settings):
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    now = timezone.now()
    never_published = checking_scan(case)
    lost = checking_scan(case, claim_token="task-1", attempts=1)
    running = checking_scan(case, claim_token="task-2", attempts=1)
    exhausted = checking_scan(case, attempts=settings.SCAN_MAX_ATTEMPTS)
    fresh = checking_scan(case)
    Scan.objects.filter(pk__in=[never_published.pk, lost.pk, exhausted.pk]).update(
        status_changed_at=now - timedelta(hours=1)
    )
    # Past the queued timeout, within the processing one: the check may still be running.
    Scan.objects.filter(pk=running.pk).update(
        status_changed_at=now - settings.SCAN_QUEUED_TIMEOUT - timedelta(seconds=5)
    )

    assert sorted(pipeline.sweep_stuck_scans()) == sorted([never_published.pk, lost.pk])
    rows = {
        pk: (status, token) for pk, status, token in Scan.objects.values_list("pk", "status", "claim_token")
    }
    assert rows[lost.pk] == rows[never_published.pk] == (Scan.Status.CHECKING, "")
    assert rows[running.pk] == (Scan.Status.CHECKING, "task-2")
    assert rows[fresh.pk] == (Scan.Status.CHECKING, "")
    assert rows[exhausted.pk][0] == Scan.Status.HELD
    assert "gave up after" in Scan.objects.get(pk=exhausted.pk).hold_reason


def test_a_restarted_worker_hands_out_the_checks_its_previous_run_left(
    case, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    mine, theirs, waiting = checking_scan(case), checking_scan(case), checking_scan(case)
    pipeline.claim(mine.pk, "task-1", "celery@a", text_check=True)
    pipeline.claim(theirs.pk, "task-2", "celery@b", text_check=True)
    Scan.objects.filter(pk=waiting.pk).update(claimed_by="celery@a")  # an earlier, handed-back claim

    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.requeue_claims_of("celery@a") == [mine.pk]

    rows = {
        pk: (status, token) for pk, status, token in Scan.objects.values_list("pk", "status", "claim_token")
    }
    assert rows == {
        mine.pk: (Scan.Status.CHECKING, ""),
        theirs.pk: (Scan.Status.CHECKING, "task-2"),
        waiting.pk: (Scan.Status.CHECKING, ""),
    }
    assert enqueued == [mine.pk]


def test_a_verdict_of_an_attempt_that_lost_its_claim_records_nothing(case):
    scan = checking_scan(case)
    pipeline.claim(scan.pk, "task-2", text_check=True)
    verdict = burnedin.Screening(False, "", {"words": 0, "held": False, "ms": 1.0})
    assert burnedin.settle(scan.pk, "task-1", verdict) is False
    scan.refresh_from_db()
    assert (scan.status, scan.claim_token) == (Scan.Status.CHECKING, "task-2")
    assert AnonymisationReport.objects.get().files[0]["text_check"] == "pending"


def test_a_scan_retracted_during_its_check_is_not_passed_on(case, owner):
    scan = checking_scan(case)
    pipeline.claim(scan.pk, "task-1", text_check=True)
    Scan.objects.filter(pk=scan.pk).update(retracted_at=timezone.now())
    assert burnedin.settle(scan.pk, "task-1", burnedin.Screening(False, "", {})) is False
    assert Scan.objects.get(pk=scan.pk).status == Scan.Status.CHECKING
