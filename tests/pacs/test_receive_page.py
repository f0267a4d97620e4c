"""The case page's "From the PACS" panel (cases/views_pacs.py, templates/cases/_pacs.html): a
clinician asks for a study by StudyInstanceUID and follows the pull's state on the page."""

import pytest

from cases import pacs_pull
from cases.models import AuditEvent, Case, StudyImport
from ml.dicomseries import build_series

from .receiving import point_at

pytestmark = pytest.mark.django_db
UID = "1.2.826.0.1.3680043.8.498.12345"


@pytest.fixture
def no_pacs_reached(settings):
    settings.PACS_URL = "http://127.0.0.1:9/dicom-web"  # configured; never reached by these tests


def test_a_clinician_asks_for_a_study_and_sees_it_queued(no_pacs_reached, owner_client, case, owner):
    page = owner_client.get(f"/cases/{case.pk}/")
    assert 'id="pull-form"' in page.content.decode()

    response = owner_client.post(f"/cases/{case.pk}/pull/", {"study_uid": UID}, follow=True)

    record = StudyImport.objects.get()
    assert (record.case, record.requested_by, record.status) == (case, owner, StudyImport.Status.QUEUED)
    text = response.content.decode()
    assert f"Pull {record.pk} queued" in text and "Queued" in text and "Reload the page" in text
    assert UID not in text
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.PACS_PULL, object_id=str(case.pk)).exists()


def test_a_malformed_uid_is_said_and_asks_nothing(no_pacs_reached, owner_client, case):
    response = owner_client.post(f"/cases/{case.pk}/pull/", {"study_uid": "1.2.abc"}, follow=True)

    assert "Nothing was asked of the PACS: A StudyInstanceUID is digits and dots" in response.content.decode()
    assert not StudyImport.objects.exists()


def test_outsiders_get_404(no_pacs_reached, client_for, outsider, case):
    assert client_for(outsider).post(f"/cases/{case.pk}/pull/", {"study_uid": UID}).status_code == 404
    assert not StudyImport.objects.exists()


def test_a_closed_case_has_no_pull_form_and_refuses_one(no_pacs_reached, owner_client, case):
    case.status = Case.Status.CLOSED
    case.save()

    assert 'id="pull-form"' not in owner_client.get(f"/cases/{case.pk}/").content.decode()
    response = owner_client.post(f"/cases/{case.pk}/pull/", {"study_uid": UID}, follow=True)
    assert "is closed" in response.content.decode()
    assert not StudyImport.objects.exists()


def test_without_a_pacs_the_panel_is_not_shown(settings, owner_client, case):
    settings.PACS_URL = ""

    assert 'id="pacs"' not in owner_client.get(f"/cases/{case.pk}/").content.decode()


def test_a_finished_pull_shows_its_scans_and_a_failed_one_its_reason(
    settings, orthanc, pacs, lgg_slices, owner_client, case, owner
):
    point_at(settings, orthanc)
    series = build_series(lgg_slices[:2])
    pacs.store(series)
    done = pacs_pull.request_pull(
        series[0].StudyInstanceUID, team=case.team, user=owner, case=case, publish=False
    )
    pacs_pull.run_pull(done.pk)
    failed = pacs_pull.request_pull(UID, team=case.team, user=owner, case=case, publish=False)
    pacs_pull.run_pull(failed.pk)

    text = owner_client.get(f"/cases/{case.pk}/").content.decode()

    assert "<strong>Done</strong> · 2 new scans" in text
    assert "<strong>Failed</strong> · The PACS holds no study with this StudyInstanceUID." in text
