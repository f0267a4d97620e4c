"""The clinical question through the API: chosen on create, read back, changed while no scan is
reviewed (409 ``question_settled`` after), filtered on."""

import pytest

from cases.models import AuditEvent, Case
from tests.factories import CaseFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db


def test_a_case_is_opened_for_a_question_and_reads_it_back(owner_api, team):
    response = owner_api.post("/api/v1/cases/", {"task": "tumour-ct"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["task"], body["task_label"]) == ("tumour-ct", "Tumour (CT)")
    assert Case.objects.get(pk=body["id"]).task == "tumour-ct"


def test_a_case_opened_without_a_question_is_a_tumour_mri_case(owner_api, team):
    body = owner_api.post("/api/v1/cases/", {}, format="json").json()
    assert body["task"] == "tumour-mri"


def test_an_unknown_question_is_a_400(owner_api, team):
    response = owner_api.post("/api/v1/cases/", {"task": "knee-xray"}, format="json")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["task"]


def test_the_question_changes_until_a_scan_is_reviewed(owner_api, owner, case):
    prediction = PredictionFactory(scan=ScanFactory(case=case))
    response = owner_api.patch(f"/api/v1/cases/{case.pk}/", {"task": "dementia-mri"}, format="json")
    assert response.status_code == 200 and response.json()["task"] == "dementia-mri"
    [update] = AuditEvent.objects.filter(verb=AuditEvent.Verb.CASE_UPDATE)
    assert update.detail["task"] == {"from": "tumour-mri", "to": "dementia-mri"}

    ReviewFactory(prediction=prediction, reviewer=owner)
    response = owner_api.patch(f"/api/v1/cases/{case.pk}/", {"task": "tumour-mri"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "question_settled"
    case.refresh_from_db()
    assert case.task == "dementia-mri"


def test_cases_filter_by_question(owner_api, owner, team):
    CaseFactory(team=team, created_by=owner)
    ct = CaseFactory(team=team, created_by=owner, task="tumour-ct")
    body = owner_api.get("/api/v1/cases/", {"task": "tumour-ct"}).json()
    assert [row["id"] for row in body["results"]] == [ct.pk]
