"""Refused attempts leave an audit event: who tried what on which case, and why it was refused."""

import pytest
from django.urls import reverse

from cases.models import AuditEvent, Case, Scan
from tests.factories import PredictionFactory, ScanFactory

pytestmark = pytest.mark.django_db


def _refusals():
    return list(AuditEvent.objects.filter(verb=AuditEvent.Verb.REFUSED).order_by("pk"))


@pytest.fixture
def closed_case(case):
    prediction = PredictionFactory(scan=ScanFactory(case=case, status=Scan.Status.DONE, outcome="classified"))
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED)
    case.refresh_from_db()
    return case, prediction


def test_a_note_change_on_a_closed_case_is_refused_and_audited(owner_client, owner_api, closed_case):
    case, _ = closed_case
    owner_client.post(reverse("cases:update", args=[case.pk]), {"status": "closed", "notes": "x"})
    response = owner_api.patch(f"/api/v1/cases/{case.pk}/", {"notes": "y"}, format="json")
    assert response.status_code == 409
    events = _refusals()
    assert [(e.detail["action"], e.detail["reason"], e.object_id) for e in events] == [
        ("case_update", "case_closed", str(case.pk))
    ] * 2


def test_a_review_and_a_retraction_on_a_closed_case_are_refused_and_audited(owner_api, closed_case):
    case, prediction = closed_case
    scan = prediction.scan
    assert (
        owner_api.post(f"/api/v1/scans/{scan.pk}/review/", {"label": "glioma"}, format="json").status_code
        == 409
    )
    response = owner_api.post(f"/api/v1/scans/{scan.pk}/retract/", {"reason": "wrong"}, format="json")
    assert response.status_code in (403, 409)
    actions = [(e.detail["action"], e.detail["case"]) for e in _refusals()]
    assert actions == [("review", case.pk), ("scan_retract", case.pk)]


def test_reading_a_cases_scans_through_the_api_is_a_case_view(owner_api, case):
    ScanFactory(case=case)
    assert owner_api.get(f"/api/v1/cases/{case.pk}/scans/").status_code == 200
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.CASE_VIEW, object_id=str(case.pk)).exists()
