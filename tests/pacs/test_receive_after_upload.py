"""A study that first arrived by a normal upload (.dcm files) is recognised by a later pull or push
of the same study: it joins the upload's case (studies.join_key on the Study row) instead of
opening a new one, adding only the slices the case does not hold; another team's upload is not
found."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases import pacs_import, pacs_pull
from cases.models import Case, Study, StudyImport
from ml.dicomseries import build_series
from tests.cases.series_data import as_file
from tests.factories import CaseFactory

from .receiving import point_at

pytestmark = pytest.mark.django_db


def upload(client, case, datasets):
    files = [SimpleUploadedFile(f"{i}.dcm", as_file(ds)) for i, ds in enumerate(datasets)]
    assert client.post(reverse("cases:upload", args=[case.pk]), {"files": files}).status_code == 302


def test_a_pull_of_an_uploaded_study_joins_its_case(
    settings, orthanc, pacs, lgg_slices, owner_client, case, team, owner
):
    point_at(settings, orthanc)
    series = build_series(lgg_slices[:4], identifying=True)
    upload(owner_client, case, series[:2])
    [study] = Study.objects.filter(case=case)
    assert study.join_key and study.join_key != study.study_uid
    pacs.store(series)

    record = pacs_pull.request_pull(series[0].StudyInstanceUID, team=team, user=owner, publish=False)
    pacs_pull.run_pull(record.pk, last_attempt=True)

    record.refresh_from_db()
    assert (record.status, record.case, record.scan_count) == (StudyImport.Status.DONE, case, 2), (
        record.reason
    )
    assert Case.objects.count() == 1 and case.scans.count() == 4
    assert Study.objects.filter(case=case).count() == 1  # the same study row: the same remapped UID


def test_a_push_of_an_uploaded_study_joins_its_case_and_adds_nothing_it_holds(
    lgg_slices, owner_client, case, team, owner
):
    series = build_series(lgg_slices[:3])
    upload(owner_client, case, series)

    stored_in, scans = pacs_import.store_datasets(
        series, team=team, user=owner, source=StudyImport.Source.PUSH
    )

    assert stored_in == case and scans == []
    assert Case.objects.count() == 1 and case.scans.count() == 3


def test_another_teams_upload_of_the_study_is_not_found(
    lgg_slices, client_for, other_team, outsider, team, owner
):
    series = build_series(lgg_slices[:2])
    theirs = CaseFactory(team=other_team, created_by=outsider)
    upload(client_for(outsider), theirs, series)

    stored_in, scans = pacs_import.store_datasets(
        series, team=team, user=owner, source=StudyImport.Source.PUSH
    )

    assert stored_in != theirs and stored_in.team == team and len(scans) == 2
    assert theirs.scans.count() == 2


def test_a_different_study_of_the_same_team_opens_its_own_case(lgg_slices, owner_client, case, team, owner):
    upload(owner_client, case, build_series(lgg_slices[:2]))
    other = build_series(lgg_slices[2:4], salt="another study")

    stored_in, _ = pacs_import.store_datasets(other, team=team, user=owner, source=StudyImport.Source.PUSH)

    assert stored_in != case
