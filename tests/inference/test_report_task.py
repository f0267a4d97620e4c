"""The report-back task's bounds (inference/tasks.py report_series), without a PACS: a retry the
broker does not take leaves the verdict failed with the reason, not "sending" for ever."""

import pytest
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from cases.pacs import PacsUnavailable
from inference import reportback
from inference.models import SeriesVerdict
from inference.tasks import report_series
from tests.inference.test_series_review import series_with_verdict

pytestmark = pytest.mark.django_db


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
    report_series.push_request(id="r-1", args=[verdict.pk], kwargs={}, retries=0, called_directly=False)
    try:
        with pytest.raises(Reject):
            report_series.run(verdict.pk)
    finally:
        report_series.pop_request()

    verdict.refresh_from_db()
    assert verdict.report_state == SeriesVerdict.Report.FAILED, verdict.report_reason
    assert "could not connect" in verdict.report_reason
    assert "task queue is unavailable" in verdict.report_reason
    assert verdict.report_attempts == 1
