"""inference/reportback.py against a real Orthanc: a small lgg-flair series uploaded, classified by
the shipped model, then its verdict sent back (the explanation capture and the SR), found with
QIDO-RS in the de-identified study and read back; Orthanc down: the failure is recorded, retried
a bounded number of times, and classification is never held up."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.models import Scan, Series
from inference import pipeline, reportback, tasks
from inference.models import SeriesVerdict
from inference.pacsreport import read_verdict
from inference.registry import sync_registry
from ml.dicomseries import build_series
from ml.series import RULE_FILE
from tests.cases.series_data import as_file

from .conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def shipped_model(require_model):
    sync_registry()
    active = pipeline.ModelVersion.active_for("tumour-mri")
    if active is None or not (pipeline.runtime.model_dir(active) / RULE_FILE).is_file():
        pytest.skip("no active tumour model with a series rule")
    return active


@pytest.fixture
def pacs_settings(settings, orthanc):
    settings.PACS_URL = orthanc.dicomweb_url
    settings.PACS_USER, settings.PACS_PASSWORD = orthanc.user, orthanc.password
    settings.PACS_TIMEOUT = 5
    settings.PACS_REPORT_BACKOFF_S = 1
    settings.PACS_REPORT_MAX_BACKOFF_S = 1
    return settings


def upload_series(client, case, slices):
    files = [SimpleUploadedFile(f"{i}.dcm", as_file(ds)) for i, ds in enumerate(build_series(slices))]
    assert client.post(reverse("cases:upload", args=[case.pk]), {"files": files}).status_code == 302
    return Series.objects.get(case=case)


def classify(series):
    # The worker reads each slice for burned-in text, then classifies it, in one task.
    for scan in series.slices().filter(status__in=[Scan.Status.CHECKING, Scan.Status.QUEUED]):
        assert pipeline.classify_scan(scan.pk) == Scan.Status.DONE


@pytest.fixture
def classified_series(owner_client, case, shipped_model, lgg_slices, pacs_settings):
    """Five slices around the first tumour slice, classified by the shipped model."""
    first = next(i for i, item in enumerate(lgg_slices) if item.tumour)
    series = upload_series(owner_client, case, lgg_slices[first - 2 : first + 3])
    classify(series)
    return series


def test_the_verdict_goes_back_to_the_pacs_in_the_deidentified_study(
    classified_series, shipped_model, orthanc
):
    series = classified_series
    verdict = SeriesVerdict.objects.get(series=series)
    uids = reportback.report_series(series.pk)

    assert len(uids) == 2
    pacs = client_for(orthanc)
    study_uid = series.study.study_uid  # the remapped UID BrainScan holds, not the scanner's
    found = {s["00080060"]["Value"][0]: s for s in pacs.find_series(study_uid)}
    assert set(found) == {"OT", "SR"}  # the slices themselves were never sent
    [sr] = pacs.fetch_series(study_uid, found["SR"]["0020000E"]["Value"][0])
    result = read_verdict(sr)
    assert (result.label, result.model_name, result.model_version) == (
        verdict.label,
        shipped_model.name,
        shipped_model.version,
    )
    assert result.probability == pytest.approx(verdict.probability, abs=1e-6)
    referenced = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == series.series_uid
    [sc] = pacs.fetch_series(study_uid, found["OT"]["0020000E"]["Value"][0])
    top = Scan.objects.get(pk=verdict.most_suspicious[0]["scan"])
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == _sop_uid(top)
    assert sc.pixel_array.shape[-1] == 3 and "AI-generated" in sc.ImageComments
    assert {sc.SOPInstanceUID, sr.SOPInstanceUID} == set(uids)

    verdict.refresh_from_db()
    assert (verdict.report_state, verdict.report_attempts, verdict.report_uids) == ("sent", 1, uids)


def test_pacs_down_is_recorded_retried_and_then_sent(
    classified_series, pacs_settings, orthanc, owner_client, case
):
    pacs_settings.PACS_REPORT_ATTEMPTS = 3
    verdict = SeriesVerdict.objects.get(series=classified_series)
    orthanc.stop()

    tasks.report_series.apply(args=[verdict.pk])  # runs its retries in place

    verdict.refresh_from_db()
    assert (verdict.report_state, verdict.report_attempts) == ("failed", 3)
    assert verdict.report_reason.startswith("attempt 3 of 3: PACS unavailable (refused): could not connect")
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "PACS report: failed, attempt 3 of 3: PACS unavailable (refused)" in page

    orthanc.start()
    SeriesVerdict.objects.filter(pk=verdict.pk).update(report_attempts=0)
    tasks.report_series.apply(args=[verdict.pk])
    verdict.refresh_from_db()
    assert verdict.report_state == "sent" and len(verdict.report_uids) == 2


def test_a_transient_failure_is_retried_and_recorded_while_it_lasts(
    classified_series, pacs_settings, monkeypatch
):
    pacs_settings.PACS_REPORT_ATTEMPTS = 2
    verdict = SeriesVerdict.objects.get(series=classified_series)
    real_store, seen = reportback.Pacs.store, []

    def flaky(self, datasets):
        seen.append(SeriesVerdict.objects.get(pk=verdict.pk).report_state)
        if len(seen) == 1:
            raise reportback.PacsUnavailable(
                "timeout", "no answer within 5 s when trying to store the objects"
            )
        return real_store(self, datasets)

    monkeypatch.setattr(reportback.Pacs, "store", flaky)
    tasks.report_series.apply(args=[verdict.pk])

    verdict.refresh_from_db()
    assert verdict.report_state == "sent" and verdict.report_attempts == 2 and verdict.report_reason == ""


def test_report_back_is_queued_only_when_switched_on(
    owner_client,
    case,
    shipped_model,
    lgg_slices,
    pacs_settings,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    queued = []
    monkeypatch.setattr(reportback, "enqueue_report", queued.append)
    series = upload_series(owner_client, case, lgg_slices[:3])
    classify(series)
    assert SeriesVerdict.objects.get(series=series).report_state == "" and queued == []

    pacs_settings.PACS_REPORT_BACK = True
    later = upload_series(owner_client, case, lgg_slices[3:5])  # the same series: judged again
    assert later == series
    with django_capture_on_commit_callbacks(execute=True):
        classify(series)
    verdict = SeriesVerdict.objects.get(series=series)
    assert verdict.report_state == "pending" and queued == [verdict.pk]


def test_a_broker_outage_never_holds_up_classification(
    owner_client,
    case,
    shipped_model,
    lgg_slices,
    pacs_settings,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    pacs_settings.PACS_REPORT_BACK = True

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(reportback.current_app, "send_task", broker_down)
    series = upload_series(owner_client, case, lgg_slices[:2])
    with django_capture_on_commit_callbacks(execute=True):
        classify(series)  # every slice DONE (asserted inside)
    verdict = SeriesVerdict.objects.get(series=series)
    assert verdict.report_state == "failed" and "could not be queued" in verdict.report_reason


def _sop_uid(scan) -> str:
    import pydicom

    with scan.image.open("rb") as stored:
        return pydicom.dcmread(stored, stop_before_pixels=True).SOPInstanceUID
