"""The plain functions behind the Celery tasks: claim, record, fail, retry, sweep.

The model call itself is replaced here by a recorded result so that these tests pin the
bookkeeping; tests/inference/test_worker.py runs the real model through a real worker.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import OperationalError
from django.utils import timezone

from cases.models import Case, Scan
from inference import pipeline
from inference.models import Prediction
from tests.factories import ModelVersionFactory, ScanFactory

pytestmark = pytest.mark.django_db


def result(label="glioma", outcome="classified", tumour=True, confidence=0.9):
    probabilities = {"glioma": 0.9, "meningioma": 0.05, "notumor": 0.03, "pituitary": 0.02}
    return SimpleNamespace(
        outcome=outcome,
        outcome_reason="" if outcome == "classified" else "top probability below the refer threshold",
        label=label,
        confidence=confidence,
        probabilities=probabilities,
        tumour_probability=0.97 if tumour else 0.1,
        tumour_suspected=tumour,
        latency_ms=42.0,
        explanation_png=None,
    )


@pytest.fixture
def active_model():
    return ModelVersionFactory(is_active=True)


@pytest.fixture
def model_returns(monkeypatch):
    calls = []

    def install(value):
        def fake(model_version, data):
            calls.append((model_version, data))
            if isinstance(value, BaseException):
                raise value
            return value

        monkeypatch.setattr("inference.runtime.classify_image", fake)
        return calls

    return install


def test_classify_records_one_prediction_and_flags_the_case(case, active_model, model_returns):
    scan = ScanFactory(case=case)
    calls = model_returns(result())
    assert pipeline.classify_scan(scan.pk) == Scan.Status.DONE
    scan.refresh_from_db()
    case.refresh_from_db()
    assert scan.status == Scan.Status.DONE and scan.outcome == Scan.Outcome.CLASSIFIED
    assert scan.attempts == 1
    prediction = Prediction.objects.get(scan=scan)
    assert (prediction.label, prediction.model_version) == ("glioma", active_model)
    assert prediction.probabilities["notumor"] == pytest.approx(0.03)
    assert case.flag == Case.Flag.TUMOUR_SUSPECTED
    assert calls[0][1] == scan.image.open("rb").read()


def test_uncertain_outcome_flags_case_for_referral(case, active_model, model_returns):
    scan = ScanFactory(case=case)
    model_returns(result(outcome="uncertain", tumour=False, confidence=0.4))
    pipeline.classify_scan(scan.pk)
    case.refresh_from_db()
    scan.refresh_from_db()
    assert scan.outcome == Scan.Outcome.UNCERTAIN and scan.outcome_reason
    assert case.flag == Case.Flag.UNCERTAIN


def test_a_scan_already_claimed_is_not_classified_twice(case, active_model, model_returns):
    scan = ScanFactory(case=case, status=Scan.Status.PROCESSING)
    calls = model_returns(result())
    assert pipeline.classify_scan(scan.pk) is None
    assert calls == [] and not Prediction.objects.exists()


def test_claim_lets_exactly_one_of_two_claimers_win(case):
    scan = ScanFactory(case=case)
    assert [pipeline.claim(scan.pk), pipeline.claim(scan.pk)] == [True, False]


def test_a_redelivery_of_the_claiming_message_takes_over_a_processing_scan(case, active_model, model_returns):
    """The worker running the message died (a redelivery means it was never acknowledged)."""
    scan = ScanFactory(case=case)
    model_returns(result())
    assert pipeline.claim(scan.pk, "task-1", "celery@a")

    assert pipeline.classify_scan(scan.pk, claim_token="task-1", worker="celery@b") == Scan.Status.DONE
    scan.refresh_from_db()
    assert (scan.attempts, scan.claimed_by) == (2, "celery@b")
    assert Prediction.objects.filter(scan=scan).count() == 1


def test_another_message_cannot_take_over_a_processing_scan(case, active_model, model_returns):
    scan = ScanFactory(case=case)
    calls = model_returns(result())
    assert pipeline.claim(scan.pk, "task-1", "celery@a")

    assert pipeline.classify_scan(scan.pk, claim_token="task-2", worker="celery@b") is None
    assert pipeline.classify_scan(scan.pk) is None  # no token: a plain call never takes over
    scan.refresh_from_db()
    assert (scan.status, scan.attempts, scan.claim_token) == (Scan.Status.PROCESSING, 1, "task-1")
    assert calls == []


def test_a_scan_that_keeps_killing_its_worker_fails_after_max_attempts(case, settings):
    scan = ScanFactory(case=case)
    claims = [pipeline.claim(scan.pk, "task-1", "celery@a") for _ in range(settings.SCAN_MAX_ATTEMPTS + 1)]

    assert claims == [True] * settings.SCAN_MAX_ATTEMPTS + [False]
    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED
    assert (
        scan.failure_reason
        == f"Gave up after {settings.SCAN_MAX_ATTEMPTS} attempts (worker lost or timed out)."
    )


def test_a_restarted_worker_requeues_the_scans_its_previous_run_had_claimed(
    case, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    mine, theirs, waiting = ScanFactory(case=case), ScanFactory(case=case), ScanFactory(case=case)
    pipeline.claim(mine.pk, "task-1", "celery@a")
    pipeline.claim(theirs.pk, "task-2", "celery@b")

    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.requeue_claims_of("celery@a") == [mine.pk]

    states = dict(Scan.objects.values_list("pk", "status"))
    assert states == {
        mine.pk: Scan.Status.QUEUED,
        theirs.pk: Scan.Status.PROCESSING,
        waiting.pk: Scan.Status.QUEUED,
    }
    assert enqueued == [mine.pk]
    assert pipeline.requeue_claims_of("") == []


def test_rerun_after_requeue_keeps_exactly_one_prediction(case, active_model, model_returns):
    scan = ScanFactory(case=case)
    model_returns(result())
    pipeline.classify_scan(scan.pk)
    Scan.objects.filter(pk=scan.pk).update(status=Scan.Status.QUEUED)
    pipeline.classify_scan(scan.pk)
    assert Prediction.objects.filter(scan=scan).count() == 1


def test_missing_scan_returns_quietly(db):
    assert pipeline.classify_scan(987654) is None


def test_no_active_model_gives_a_clear_outcome_not_a_failure(case, model_returns):
    scan = ScanFactory(case=case)
    calls = model_returns(result())
    assert pipeline.classify_scan(scan.pk) == Scan.Status.DONE
    scan.refresh_from_db()
    assert (scan.status, scan.outcome) == (Scan.Status.DONE, Scan.Outcome.NO_MODEL)
    assert scan.outcome_reason.startswith("no model is active for Tumour (MRI) yet")
    assert calls == [] and not Prediction.objects.exists()


def test_unexpected_error_fails_the_scan_with_a_reason(case, active_model, model_returns):
    scan = ScanFactory(case=case)
    model_returns(ValueError("bad tensor shape"))
    assert pipeline.classify_scan(scan.pk) == Scan.Status.FAILED
    scan.refresh_from_db()
    assert scan.failure_reason == "Classification failed (ValueError)."


def test_transient_error_requeues_the_scan_and_raises_for_retry(case, active_model, model_returns):
    scan = ScanFactory(case=case)
    model_returns(OperationalError("server closed the connection unexpectedly"))
    with pytest.raises(pipeline.TransientScanError):
        pipeline.classify_scan(scan.pk)
    scan.refresh_from_db()
    assert scan.status == Scan.Status.QUEUED and scan.attempts == 1


def test_classify_task_retries_only_transient_errors():
    from inference.tasks import classify_scan

    assert classify_scan.autoretry_for == (pipeline.TransientScanError,)
    assert classify_scan.retry_jitter is True and classify_scan.retry_backoff


def test_sweep_requeues_stuck_scans_and_leaves_fresh_ones(case, monkeypatch, settings):
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    long_ago = timezone.now() - timedelta(hours=1)
    lost_queued = ScanFactory(case=case)
    lost_processing = ScanFactory(case=case, status=Scan.Status.PROCESSING, attempts=1)
    fresh = ScanFactory(case=case)
    exhausted = ScanFactory(case=case, status=Scan.Status.PROCESSING, attempts=settings.SCAN_MAX_ATTEMPTS)
    Scan.objects.exclude(pk=fresh.pk).update(status_changed_at=long_ago)

    requeued = pipeline.sweep_stuck_scans()

    assert sorted(requeued) == sorted([lost_queued.pk, lost_processing.pk])
    states = dict(Scan.objects.values_list("pk", "status"))
    assert states[lost_processing.pk] == Scan.Status.QUEUED
    assert states[fresh.pk] == Scan.Status.QUEUED
    assert states[exhausted.pk] == Scan.Status.FAILED
    assert "Gave up after" in Scan.objects.get(pk=exhausted.pk).failure_reason


def test_sweep_enqueues_on_commit(case, monkeypatch, django_capture_on_commit_callbacks):
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    scan = ScanFactory(case=case)
    Scan.objects.filter(pk=scan.pk).update(status_changed_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.sweep_stuck_scans()
    assert enqueued == [scan.pk]


def test_classify_task_retries_a_transient_error_then_succeeds(monkeypatch):
    from inference.tasks import classify_scan

    outcomes = [pipeline.TransientScanError("broker hiccup"), pipeline.TransientScanError("again"), "done"]
    calls = []

    def flaky(scan_id, **claim):
        calls.append(scan_id)
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(pipeline, "classify_scan", flaky)
    assert classify_scan.apply(args=[7]).get() == "done"
    assert calls == [7, 7, 7]


def test_a_result_of_an_attempt_that_lost_its_claim_writes_nothing(case, active_model, monkeypatch):
    """The sweep handed the scan to another attempt while this one ran: no prediction, no file."""
    scan = ScanFactory(case=case)

    def slow_model(model_version, data):
        # Meanwhile the scan was re-queued and claimed by another message.
        Scan.objects.filter(pk=scan.pk).update(status=Scan.Status.QUEUED)
        assert pipeline.claim(scan.pk, "second-message")
        return SimpleNamespace(**vars(result()) | {"explanation_png": b"\x89PNG"})

    monkeypatch.setattr("inference.runtime.classify_image", slow_model)
    assert pipeline.classify_scan(scan.pk, "first-message") is None
    assert not Prediction.objects.filter(scan=scan).exists()
    scan.refresh_from_db()
    assert scan.status == Scan.Status.PROCESSING and scan.claim_token == "second-message"


def test_a_result_for_a_scan_retracted_meanwhile_writes_nothing(case, active_model, monkeypatch):
    scan = ScanFactory(case=case)

    def slow_model(model_version, data):
        Scan.objects.filter(pk=scan.pk).update(retracted_at=timezone.now(), image="")
        return SimpleNamespace(**vars(result()) | {"explanation_png": b"\x89PNG"})

    monkeypatch.setattr("inference.runtime.classify_image", slow_model)
    assert pipeline.classify_scan(scan.pk, "the-message") is None
    assert not Prediction.objects.filter(scan=scan).exists()
