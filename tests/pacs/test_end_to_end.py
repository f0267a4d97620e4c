"""Issue 20 end to end: a series of real lgg-flair slices, carrying identifying tags, goes from a
real Orthanc into BrainScan by the API's pull (POST /api/v1/pulls/), through a real Celery worker
on the broker (pull, text check, classification by the shipped tumour model, series verdict,
report-back), to a case-level verdict, and back to Orthanc as an SR and an explanation capture in
the de-identified study; no identifier of the source arrives in BrainScan or goes back."""

import logging

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import Case, Scan, Series
from inference.models import ModelVersion, SeriesVerdict
from inference.pacsreport import read_verdict
from ml.dicomseries import IDENTIFYING_DATES, IDENTIFYING_TAGS, build_series
from tests.waiting import wait_for

from .conftest import client_for
from .receiving import files_since, point_at, rows_as_text, source_uids, stored_files

pytestmark = pytest.mark.worker
FINISHED = ("done", "failed")


@pytest.fixture
def hospital(settings, orthanc):
    """BrainScan configured for the disposable Orthanc, report-back on (PACS_REPORT_BACK)."""
    point_at(settings, orthanc)
    settings.PACS_REPORT_BACK = True
    settings.PACS_REPORT_BACKOFF_S = settings.PACS_REPORT_MAX_BACKOFF_S = 1
    return orthanc


def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def verdict_sent(series_id):
    verdict = SeriesVerdict.objects.filter(series_id=series_id).first()
    if verdict is not None and verdict.report_state in ("sent", "failed"):
        return verdict
    return None


def test_a_series_goes_from_orthanc_to_a_case_verdict_and_back(
    hospital, classifying_worker, lgg_slices, owner, owner_client, caplog
):
    caplog.set_level(logging.INFO)
    source = build_series(lgg_slices, identifying=True)
    pacs = client_for(hospital)
    pacs.store(source)
    before = stored_files()

    response = api(owner).post("/api/v1/pulls/", {"study_uid": source[0].StudyInstanceUID}, format="json")

    assert response.status_code == 202, response.content
    pulled = wait_for(
        lambda: (body := api(owner).get(response.json()["url"]).json())["status"] in FINISHED and body,
        timeout=60,
        message="the pull to finish",
    )
    assert (pulled["status"], pulled["scan_count"]) == ("done", len(source)), pulled
    case = Case.objects.get(pk=pulled["case"])
    series = Series.objects.get(case=case)
    verdict = wait_for(lambda: verdict_sent(series.pk), timeout=120, message="the verdict to be reported")

    # Every slice was text-checked and classified by the shipped model.
    scans = case.scans.all()
    assert {scan.status for scan in scans} == {Scan.Status.DONE}, [s.outcome_reason for s in scans]
    checked = [entry for report in case.anonymisation_reports.all() for entry in report.files]
    assert len(checked) == len(source) and all(
        e["text_check"] != "pending" and not e["held"] for e in checked
    )
    active = ModelVersion.active_for("tumour-mri")
    assert (active.name, active.version) == ("brain-tumour", "2026.11.24")
    assert verdict.model_version == active and verdict.answered == verdict.slices == len(source)
    # TCGA_CS_4942 has 6 tumour slices of 20: the series is suspected, so is the case.
    assert verdict.tumour_suspected, verdict.headline
    case.refresh_from_db()
    assert case.flag == Case.Flag.TUMOUR_SUSPECTED

    # The verdict as a clinician sees it: the case page and the API's series endpoint.
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert verdict.headline in page and Case.Flag.TUMOUR_SUSPECTED.label in page
    assert "PACS report: sent" in page
    [study] = api(owner).get(f"/api/v1/cases/{case.pk}/series/").json()
    [described] = study["series"]
    assert described["slice_count"] == len(source)
    assert described["verdict"]["headline"] == verdict.headline
    assert described["verdict"]["report"]["state"] == "sent", described["verdict"]["report"]

    # Back in Orthanc: an SR and a capture in the de-identified study, read back.
    assert verdict.report_state == "sent", verdict.report_reason
    study_uid = series.study.study_uid
    assert study_uid != source[0].StudyInstanceUID
    found = {s["00080060"]["Value"][0]: s for s in pacs.find_series(study_uid)}
    assert set(found) == {"OT", "SR"}
    [sr] = pacs.fetch_series(study_uid, found["SR"]["0020000E"]["Value"][0])
    [sc] = pacs.fetch_series(study_uid, found["OT"]["0020000E"]["Value"][0])
    result = read_verdict(sr)
    assert (result.label, result.model_name, result.model_version) == (
        verdict.label,
        "brain-tumour",
        "2026.11.24",
    )
    assert {sr.SOPInstanceUID, sc.SOPInstanceUID} == set(verdict.report_uids)

    # No identifier of the source: not in the stored files, the rows, the logs or what went back.
    identifying = [v for v in IDENTIFYING_TAGS.values() if len(v) > 2]  # "F" is read per tag below
    identifying += [lgg_slices[0].date, *source_uids(source)]
    stored = files_since(before)
    assert len(stored) >= len(source)
    rows, sent = rows_as_text(), [sr, sc]
    assert f"Stored {len(source)} scan(s) for case {case.pk}" in caplog.text  # the worker's log is read
    for value in identifying:
        assert value not in rows, value
        assert value not in caplog.text, value
        for path in stored:
            assert value.encode() not in path.read_bytes(), f"{value!r} in {path.name}"
        for ds in sent:
            assert value not in str(ds), f"{value!r} in the {ds.Modality} sent back"
    for ds in sent:
        for keyword in (*IDENTIFYING_TAGS, *IDENTIFYING_DATES):
            assert str(ds.get(keyword, "") or "") != str(source[0].get(keyword, "")), keyword
