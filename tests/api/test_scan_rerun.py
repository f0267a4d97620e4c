"""POST scans/{id}/rerun/: the API's one action on a scan that answered nothing."""

import pytest

from cases.models import Scan
from tests.factories import PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db


def refused_ct_slice(case):
    return ScanFactory(
        case=case,
        status=Scan.Status.DONE,
        outcome=Scan.Outcome.WRONG_MODALITY,
        outcome_reason="this looks like a CT slice; this case asks for Tumour (MRI)",
    )


def test_the_api_reruns_a_scan_and_answers_409_once_the_question_is_settled(api_for, case, owner):
    api = api_for("owner")
    scan = refused_ct_slice(case)
    response = api.post(f"/api/v1/scans/{scan.pk}/rerun/", {"task": "tumour-ct"}, format="json")
    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["task"]) == ("queued", "tumour-ct")
    ReviewFactory(prediction=PredictionFactory(scan=ScanFactory(case=case)), reviewer=owner)
    other = refused_ct_slice(case)
    response = api.post(
        f"/api/v1/scans/{other.pk}/rerun/", {"task": "tumour-ct", "move_case": True}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "question_settled"
