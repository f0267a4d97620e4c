"""The report-back task's bounds (inference/tasks.py report_series), without a PACS: a retry the
broker does not take leaves the verdict failed with the reason, not "sending" for ever, and a
message redelivered after its worker died is bounded by the attempts recorded on the verdict."""

from contextlib import contextmanager

import pytest
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from cases.pacs import PacsUnavailable
from inference import reportback
from inference.models import SeriesVerdict
from inference.tasks import report_series
from tests.inference.test_series_review import series_with_verdict

pytestmark = pytest.mark.django_db


@contextmanager
def _as_delivered(verdict_id, request_id):
    """Run report_series as a worker runs a message the broker hands out (retries at 0 again)."""
    report_series.push_request(id=request_id, args=[verdict_id], kwargs={}, retries=0, called_directly=False)
    try:
        yield
    finally:
        report_series.pop_request()


def _delivered(verdict_id, request_id):
    with _as_delivered(verdict_id, request_id):
        return report_series.run(verdict_id)


def test_a_retry_the_broker_does_not_take_fails_the_report_with_the_reason(case, settings, monkeypatch):
    settings.PACS_REPORT_ATTEMPTS = 4
    verdict, _ = series_with_verdict(case)
    SeriesVerdict.objects.filter(pk=verdict.pk).update(report_state=SeriesVerdict.Report.PENDING)

    def pacs_down(self, objects):
        raise PacsUnavailable(PacsUnavailable.REFUSED, "could not connect to the PACS to store the objects")

    monkeypatch.setattr(reportback, "build_objects", lambda verdict: [])
    monkeypatch.setattr(reportback.Pacs, "store", pacs_down)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    settings.PACS_URL = "http://127.0.0.1:9/dicom-web"
    monkeypatch.setattr(report_series, "apply_async", broker_down)
    # As a worker runs it (not eager, which would run the retry in place): the retry is sent.
    with _as_delivered(verdict.pk, "r-1"), pytest.raises(Reject):
        report_series.run(verdict.pk)

    verdict.refresh_from_db()
    assert verdict.report_state == SeriesVerdict.Report.FAILED, verdict.report_reason
    assert "could not connect" in verdict.report_reason
    assert "task queue is unavailable" in verdict.report_reason
    assert verdict.report_attempts == 1


def test_a_report_redelivered_with_its_attempts_spent_fails_without_calling_the_pacs(
    case, settings, monkeypatch
):
    # Its worker died on each attempt: the broker redelivers the message with retries at 0 again.
    settings.PACS_REPORT_ATTEMPTS = 3
    settings.PACS_URL = "http://127.0.0.1:9/dicom-web"
    verdict, _ = series_with_verdict(case)
    SeriesVerdict.objects.filter(pk=verdict.pk).update(
        report_state=SeriesVerdict.Report.PENDING, report_attempts=3, report_reason="attempt 3 of 3: ..."
    )

    def must_not_send(*args, **kwargs):
        raise AssertionError("the PACS was contacted past the attempts")

    monkeypatch.setattr(reportback, "build_objects", must_not_send)
    monkeypatch.setattr(reportback.Pacs, "store", must_not_send)
    monkeypatch.setattr(report_series, "apply_async", must_not_send)
    assert _delivered(verdict.pk, "r-2") == []

    verdict.refresh_from_db()
    assert verdict.report_state == SeriesVerdict.Report.FAILED
    assert verdict.report_reason.startswith("attempt 3 of 3") and "gave up" in verdict.report_reason
    assert verdict.report_attempts == 3


def test_a_redelivered_report_with_one_attempt_left_makes_it_its_last(case, settings, monkeypatch):
    settings.PACS_REPORT_ATTEMPTS = 3
    settings.PACS_URL = "http://127.0.0.1:9/dicom-web"
    verdict, _ = series_with_verdict(case)
    SeriesVerdict.objects.filter(pk=verdict.pk).update(
        report_state=SeriesVerdict.Report.PENDING, report_attempts=2
    )

    def pacs_down(self, objects):
        raise PacsUnavailable(PacsUnavailable.REFUSED, "could not connect to the PACS to store the objects")

    def must_not_retry(*args, **kwargs):
        raise AssertionError("retried past the attempts")

    monkeypatch.setattr(reportback, "build_objects", lambda verdict: [])
    monkeypatch.setattr(reportback.Pacs, "store", pacs_down)
    monkeypatch.setattr(report_series, "apply_async", must_not_retry)
    assert _delivered(verdict.pk, "r-3") == []

    verdict.refresh_from_db()
    assert (verdict.report_state, verdict.report_attempts) == (SeriesVerdict.Report.FAILED, 3)
    assert verdict.report_reason.startswith("attempt 3 of 3: PACS unavailable (refused)")
    assert "trying again" not in verdict.report_reason


@pytest.mark.parametrize("state", [SeriesVerdict.Report.SENT, SeriesVerdict.Report.FAILED])
def test_a_settled_report_keeps_its_state_and_reason_when_its_message_comes_back(
    case, settings, monkeypatch, state
):
    settings.PACS_REPORT_ATTEMPTS = 2
    verdict, _ = series_with_verdict(case)
    SeriesVerdict.objects.filter(pk=verdict.pk).update(
        report_state=state, report_attempts=2, report_reason="as its last attempt left it"
    )
    monkeypatch.setattr(reportback.Pacs, "store", lambda self, objects: pytest.fail("sent again"))
    assert _delivered(verdict.pk, "r-4") == []
    verdict.refresh_from_db()
    assert (verdict.report_state, verdict.report_reason) == (state, "as its last attempt left it")


def test_a_report_the_pacs_took_is_not_sent_again_when_its_message_comes_back(case, settings, monkeypatch):
    # The worker died after the PACS stored the objects, before the ack: one attempt of three was made.
    settings.PACS_REPORT_ATTEMPTS = 3
    verdict, _ = series_with_verdict(case)
    SeriesVerdict.objects.filter(pk=verdict.pk).update(
        report_state=SeriesVerdict.Report.SENT, report_attempts=1
    )
    monkeypatch.setattr(reportback, "build_objects", lambda verdict: pytest.fail("built again"))
    monkeypatch.setattr(reportback.Pacs, "store", lambda self, objects: pytest.fail("sent again"))
    assert _delivered(verdict.pk, "r-5") == []
    verdict.refresh_from_db()
    assert (verdict.report_state, verdict.report_attempts) == (SeriesVerdict.Report.SENT, 1)
