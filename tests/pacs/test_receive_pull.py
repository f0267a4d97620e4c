"""Pulling a study from a real Orthanc by its StudyInstanceUID (cases/pacs_import.py,
cases/pacs_pull.py, the task in cases/tasks.py): it lands in a case with its study, series and
scans queued, de-identified exactly as uploads are; Orthanc down is retried, then a clear failure."""

import pytest

from cases import pacs_import, pacs_pull
from cases.models import Case, Scan, StudyImport, hash_patient_reference
from cases.signals import scans_ready
from cases.tasks import pull_study
from inference.pacsreport import AiResult, verdict_report
from ml.dicomseries import IDENTIFYING_DATES, IDENTIFYING_TAGS, build_series

from .receiving import files_since, point_at, rows_as_text, source_uids, stored_datasets, stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def new_files():
    before = stored_files()
    return lambda: files_since(before)


@pytest.fixture
def configured(settings, orthanc):
    point_at(settings, orthanc)
    return orthanc


@pytest.fixture
def announced():
    ids = []

    def receive(sender, scan_ids, **kwargs):
        ids.extend(scan_ids)

    scans_ready.connect(receive, weak=False)
    yield ids
    scans_ready.disconnect(receive)


def pull(study_uid, team, user, case=None):
    record = pacs_pull.request_pull(study_uid, team=team, user=user, case=case, publish=False)
    return pacs_pull.run_pull(record.pk, last_attempt=True) or StudyImport.objects.get(pk=record.pk)


def test_a_study_in_orthanc_is_pulled_into_a_new_case_with_its_series_queued(
    configured, pacs, lgg_slices, team, owner, announced, django_capture_on_commit_callbacks
):
    series = build_series(lgg_slices, identifying=True)
    pacs.store(series)

    with django_capture_on_commit_callbacks(execute=True):
        record = pull(series[0].StudyInstanceUID, team, owner)

    assert (record.status, record.reason, record.attempts) == (StudyImport.Status.DONE, "", 1)
    case = record.case
    assert case.team == team and case.created_by == owner
    assert case.patient_ref_hash == hash_patient_reference(IDENTIFYING_TAGS["PatientID"])
    [study] = case.studies.all()
    [received] = case.series.all()
    assert (received.study, received.modality, received.description, received.orientation) == (
        study,
        "MR",
        "FLAIR",
        "axial",
    )
    scans = list(received.slices())
    assert [scan.series_instance for scan in scans] == [item.number for item in lgg_slices]
    # Queued for the worker, whose first step reads each slice for burned-in text.
    assert {scan.status for scan in scans} == {Scan.Status.CHECKING}
    assert record.scan_count == len(scans) == len(lgg_slices)
    assert sorted(announced) == sorted(scan.pk for scan in scans)


def test_a_pulled_study_arrives_with_none_of_its_identifiers(
    configured, pacs, lgg_slices, team, owner, new_files
):
    series = build_series(lgg_slices[:4], identifying=True)
    pacs.store(series)

    case = pull(series[0].StudyInstanceUID, team, owner).case

    # PatientSex ("F") is too short to search for in bytes: the datasets are read for it below.
    identifying = [v for v in IDENTIFYING_TAGS.values() if len(v) > 2]
    identifying += [lgg_slices[0].date, *source_uids(series)]
    assert len(new_files()) == case.scans.count() == 4
    for path in new_files():
        content = path.read_bytes()
        for value in identifying:
            assert value.encode() not in content, f"{value!r} in {path.name}"
    for ds in stored_datasets(case):
        for keyword in IDENTIFYING_TAGS:
            assert not str(ds.get(keyword, "") or ""), keyword
        for keyword in IDENTIFYING_DATES:
            assert not str(ds.get(keyword, "") or ""), keyword
        assert ds.PatientIdentityRemoved == "YES"
    rows = rows_as_text()
    for value in identifying:
        assert value not in rows


def test_the_same_study_pulled_again_joins_its_case_and_adds_no_scan(
    configured, pacs, lgg_slices, team, owner
):
    series = build_series(lgg_slices[:3])
    pacs.store(series)
    first = pull(series[0].StudyInstanceUID, team, owner)

    again = pull(series[0].StudyInstanceUID, team, owner)

    assert again.status == StudyImport.Status.DONE
    assert again.case == first.case and again.scan_count == 0
    assert first.case.scans.count() == 3
    assert Case.objects.count() == 1


def test_the_patients_next_study_opens_a_case_of_its_own_found_by_the_patient_hash(
    configured, pacs, lgg_slices, team, owner
):
    first_study = build_series(lgg_slices[:2], identifying=True)
    next_study = build_series(lgg_slices[2:4], identifying=True, salt="follow-up")
    pacs.store(first_study + next_study)

    first = pull(first_study[0].StudyInstanceUID, team, owner).case
    second = pull(next_study[0].StudyInstanceUID, team, owner).case

    assert first != second
    assert first.patient_ref_hash == second.patient_ref_hash != ""


def test_a_pull_into_a_case_fills_that_case(configured, pacs, lgg_slices, case, owner):
    series = build_series(lgg_slices[:2])
    pacs.store(series)

    record = pull(series[0].StudyInstanceUID, case.team, owner, case=case)

    assert record.case == case and case.scans.count() == 2


def test_reports_and_captures_in_the_study_stay_in_the_pacs(configured, pacs, lgg_slices, team, owner):
    series = build_series(lgg_slices[:3])
    report = verdict_report(series, AiResult("glioma", 0.9, "brain-tumour", "1"))
    pacs.store(series + [report])

    record = pull(series[0].StudyInstanceUID, team, owner)

    assert record.status == StudyImport.Status.DONE
    assert record.case.scans.count() == 3
    assert record.reason == "Left out 1 series that are not MR or CT (SR)."


def test_an_unknown_study_fails_clearly_and_stores_nothing(configured, team, owner, new_files):
    record = pull("1.2.826.0.1.3680043.8.498.999", team, owner)

    assert record.status == StudyImport.Status.FAILED
    assert record.reason == "The PACS holds no study with this StudyInstanceUID."
    assert record.study_uid == "" and record.case is None
    assert not Case.objects.exists() and not new_files()


def test_orthanc_down_the_pull_waits_and_arrives_when_it_is_back(
    configured, pacs, lgg_slices, team, owner, monkeypatch
):
    series = build_series(lgg_slices[:2])
    pacs.store(series)
    configured.stop()
    seen = []
    attempt = pacs_pull.run_pull

    def then_recover(import_id, **kwargs):
        try:
            return attempt(import_id, **kwargs)
        except pacs_pull.PullDeferred:
            seen.append(StudyImport.objects.get(pk=import_id))
            configured.start()  # same port: the PACS is back
            raise

    monkeypatch.setattr(pacs_pull, "run_pull", then_recover)
    record = pacs_pull.request_pull(series[0].StudyInstanceUID, team=team, user=owner, publish=False)

    pull_study.apply(args=[record.pk])  # eager: the task's retries run at once

    [waiting] = seen
    assert waiting.status == StudyImport.Status.QUEUED
    assert "could not connect" in waiting.reason and "Trying again" in waiting.reason
    record.refresh_from_db()
    assert (record.status, record.attempts) == (StudyImport.Status.DONE, 2)
    assert record.case.scans.count() == 2


def test_orthanc_down_every_attempt_the_pull_fails_with_the_reason(configured, team, owner):
    configured.stop()
    record = pacs_pull.request_pull("1.2.3.4", team=team, user=owner, publish=False)

    pull_study.apply(args=[record.pk])

    record.refresh_from_db()
    assert record.status == StudyImport.Status.FAILED
    assert record.attempts == pacs_pull.PULL_ATTEMPTS
    assert "could not connect" in record.reason
    assert f"after {pacs_pull.PULL_ATTEMPTS} attempt(s)" in record.reason
    assert record.study_uid == ""
    assert not Case.objects.exists()


def test_wrong_pacs_credentials_fail_at_once_without_retrying(configured, settings, team, owner):
    settings.PACS_PASSWORD = "not-the-password"
    record = pacs_pull.request_pull("1.2.3.4", team=team, user=owner, publish=False)

    pull_study.apply(args=[record.pk])

    record.refresh_from_db()
    assert (record.status, record.attempts) == (StudyImport.Status.FAILED, 1)
    assert "refused our credentials (401)" in record.reason


def test_a_refused_object_fails_the_whole_pull_and_stores_nothing(
    configured, pacs, lgg_slices, team, owner, new_files
):
    series = build_series(lgg_slices[:3])
    series[1].PhotometricInterpretation = "RGB"  # not a greyscale slice: uploads refuse it too
    pacs.store(series)

    record = pull(series[0].StudyInstanceUID, team, owner)

    assert record.status == StudyImport.Status.FAILED
    assert "1 of 3 objects were refused" in record.reason and "greyscale" in record.reason
    assert not Case.objects.exists() and not Scan.objects.exists() and not new_files()


def test_import_study_returns_the_case(configured, pacs, lgg_slices, team):
    series = build_series(lgg_slices[:2])
    pacs.store(series)

    case = pacs_import.import_study(series[0].StudyInstanceUID, team=team)

    assert case.scans.count() == 2
    assert case.created_by.username == f"pacs-team-{team.pk}"
    assert not case.created_by.has_usable_password()
