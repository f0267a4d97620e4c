"""Asking for a study from the PACS through the API (cases/api_pacs.py) and the command
(pull_study): who may, what a bad request hears, the pull's state as the user follows it, and a
real Celery worker taking the queued pull from the broker to a real Orthanc."""

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases import pacs_pull
from cases.models import AuditEvent, Case, StudyImport
from ml.dicomseries import build_series
from tests.waiting import wait_for

from .receiving import point_at

pytestmark = pytest.mark.django_db
UID = "1.2.826.0.1.3680043.8.498.12345"


@pytest.fixture
def configured(settings, orthanc):
    point_at(settings, orthanc)
    return orthanc


@pytest.fixture
def no_pacs(settings):
    settings.PACS_URL = "http://127.0.0.1:9/dicom-web"  # configured; never reached by these tests


def api(user):
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_a_pull_into_a_case_is_queued_audited_and_followed(no_pacs, owner, case):
    response = api(owner).post(f"/api/v1/cases/{case.pk}/pull/", {"study_uid": UID}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["case"], body["source"], body["attempts"]) == ("queued", case.pk, "pull", 0)
    assert "study_uid" not in body
    record = StudyImport.objects.get(pk=body["id"])
    assert record.study_uid == UID and record.requested_by == owner
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.PACS_PULL, object_id=str(case.pk)).exists()
    followed = api(owner).get(body["url"])
    assert followed.status_code == 200 and followed.json()["status"] == "queued"


def test_a_team_level_pull_names_the_team_or_the_only_one(no_pacs, owner, team):
    response = api(owner).post("/api/v1/pulls/", {"study_uid": UID}, format="json")

    assert response.status_code == 202
    assert response.json()["team"] == team.pk and response.json()["case"] is None


def test_outsiders_get_404_for_the_case_and_the_pull(no_pacs, owner, outsider, case, other_team):
    queued = api(owner).post(f"/api/v1/cases/{case.pk}/pull/", {"study_uid": UID}, format="json").json()

    assert api(outsider).post(f"/api/v1/cases/{case.pk}/pull/", {"study_uid": UID}).status_code == 404
    assert api(outsider).get(f"/api/v1/pulls/{queued['id']}/").status_code == 404
    assert api(outsider).get("/api/v1/pulls/").json()["results"] == []
    team_of_owner = api(outsider).post("/api/v1/pulls/", {"study_uid": UID, "team": case.team_id})
    assert team_of_owner.status_code == 400
    assert StudyImport.objects.count() == 1


@pytest.mark.parametrize("case_id", ["abc", "%C2%B2", "99999999999999999999999"])
def test_a_case_id_that_is_no_number_is_404(no_pacs, owner, case, case_id):
    # "²" is a digit to str.isdigit() but no number to int() or the database.
    answer = api(owner).post(f"/api/v1/cases/{case_id}/pull/", {"study_uid": UID}, format="json")
    assert answer.status_code == 404 and not StudyImport.objects.exists()


def test_no_token_is_401(no_pacs, case):
    assert api(None).post(f"/api/v1/cases/{case.pk}/pull/", {"study_uid": UID}).status_code == 401
    assert api(None).get("/api/v1/pulls/").status_code == 401


@pytest.mark.parametrize("study_uid", ["", "1.2.abc", "1..2", "1" * 65, "1.2.3; DROP"])
def test_a_malformed_uid_is_400_and_queues_nothing(no_pacs, owner, case, study_uid):
    response = api(owner).post(f"/api/v1/cases/{case.pk}/pull/", {"study_uid": study_uid}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "study_uid" in response.json()["errors"]
    assert not StudyImport.objects.exists()


def test_a_closed_case_is_409(no_pacs, owner, case):
    case.status = Case.Status.CLOSED
    case.save()

    response = api(owner).post(f"/api/v1/cases/{case.pk}/pull/", {"study_uid": UID}, format="json")

    assert response.status_code == 409 and response.json()["code"] == "case_closed"
    assert not StudyImport.objects.exists()


def test_without_a_pacs_a_pull_is_409_and_says_so(settings, owner, case):
    settings.PACS_URL = ""

    response = api(owner).post(f"/api/v1/cases/{case.pk}/pull/", {"study_uid": UID}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "pacs_not_configured" and "PACS_URL" in response.json()["detail"]
    assert not StudyImport.objects.exists()


def test_a_queue_that_is_down_fails_the_pull_with_the_reason(no_pacs, owner, case, monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(pacs_pull.current_app, "send_task", broker_down)
    record = pacs_pull.request_pull(UID, team=case.team, user=owner, case=case, publish=False)

    pacs_pull._publish(record.pk)

    record.refresh_from_db()
    assert record.status == StudyImport.Status.FAILED and "task queue is unavailable" in record.reason
    assert record.study_uid == ""


def test_the_command_pulls_a_study_into_a_new_case(configured, pacs, lgg_slices, team, capsys):
    series = build_series(lgg_slices[:3], identifying=True)
    pacs.store(series)

    call_command("pull_study", series[0].StudyInstanceUID, "--team", team.name)

    record = StudyImport.objects.get()
    assert record.status == StudyImport.Status.DONE and record.case.scans.count() == 3
    assert f"Pulled 3 new scan(s) into case {record.case.pseudonym}" in capsys.readouterr().out
    assert record.requested_by.username == f"pacs-team-{team.pk}"


def test_the_command_with_orthanc_down_fails_with_the_reason(configured, team):
    configured.stop()

    with pytest.raises(CommandError) as raised:
        call_command("pull_study", UID, "--team", team.name, "--attempts", "1")

    assert "could not connect" in str(raised.value)
    assert StudyImport.objects.get().status == StudyImport.Status.FAILED


def test_the_command_refuses_an_unknown_team_or_a_non_member(no_pacs, team, outsider):
    with pytest.raises(CommandError, match="No team is named"):
        call_command("pull_study", UID, "--team", "Nobody")
    with pytest.raises(CommandError, match="is not a member"):
        call_command("pull_study", UID, "--team", team.name, "--user", outsider.username)
    assert not StudyImport.objects.exists()


@pytest.mark.worker
def test_a_real_worker_takes_the_queued_pull_to_orthanc(
    configured, pacs, lgg_slices, owner, case, running_worker
):
    series = build_series(lgg_slices[:2])
    pacs.store(series)

    response = api(owner).post(
        f"/api/v1/cases/{case.pk}/pull/", {"study_uid": series[0].StudyInstanceUID}, format="json"
    )

    assert response.status_code == 202
    url = response.json()["url"]
    done = wait_for(
        lambda: (body := api(owner).get(url).json())["status"] in ("done", "failed") and body,
        timeout=60,
        message="the pull to finish",
    )
    assert (done["status"], done["scan_count"]) == ("done", 2), done
    assert case.scans.count() == 2
