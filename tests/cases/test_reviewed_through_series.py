"""A slice reviewed only through its series counts as reviewed everywhere "reviewed" is read
(Scan.is_reviewed): its uploader can no longer retract it (page and API), the case page marks it
reviewed, its question is settled; and the case page reads it without a query per slice."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import AuditEvent, Case, QuestionSettled, Scan
from inference.models import SeriesReview
from tests.inference.test_series_review import series_with_verdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed_series(case, teammate):
    """Three slices uploaded by the owner; only their series verdict is reviewed (by a teammate)."""
    verdict, scans = series_with_verdict(case)
    SeriesReview.objects.create(verdict=verdict, reviewer=teammate, decision="confirmed", label="glioma")
    return scans


def test_a_slice_reviewed_through_its_series_is_reviewed(reviewed_series, case):
    unreviewed, _ = series_with_verdict(case, uid="2.25.8")

    assert all(scan.is_reviewed for scan in reviewed_series)
    assert not any(scan.is_reviewed for scan in Scan.objects.filter(series=unreviewed.series))
    annotated = Scan.objects.filter(case=case).with_series_reviewed().order_by("pk")
    assert [scan.is_reviewed for scan in annotated] == [True] * 3 + [False] * 3


def test_its_uploader_cannot_retract_it_on_the_page_or_in_the_api(reviewed_series, owner, owner_client):
    scan = reviewed_series[0]
    response = owner_client.post(
        reverse("cases:retract", args=[scan.pk]), {"reason": "wrong slice"}, follow=True
    )
    assert "has been reviewed" in response.content.decode()

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    answer = api.post(f"/api/v1/scans/{scan.pk}/retract/", {"reason": "wrong slice"}, format="json")

    assert answer.status_code == 403 and "has been reviewed" in answer.json()["detail"]
    assert not Scan.objects.filter(case=scan.case).exclude(retracted_at=None).exists()


def test_a_steward_still_retracts_it_and_the_audit_says_reviewed(reviewed_series, client_for, steward):
    scan = reviewed_series[0]

    client_for(steward).post(reverse("cases:retract", args=[scan.pk]), {"reason": "wrong patient"})

    assert Scan.objects.get(pk=scan.pk).retracted_by == steward
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.SCAN_RETRACT).detail["reviewed"] is True


def test_the_case_page_marks_each_slice_reviewed_and_offers_no_retraction(
    reviewed_series, case, owner_client
):
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()

    for scan in reviewed_series:
        article = page.split(f'id="scan-{scan.pk}"', 1)[1].split(">", 1)[0]
        assert 'data-reviewed="true"' in article
        assert reverse("cases:retract", args=[scan.pk]) not in page


def test_the_question_is_settled_by_a_series_review(reviewed_series, case, owner):
    with pytest.raises(QuestionSettled):
        Case.objects.get(pk=case.pk).change(owner, task="dementia-mri")
    assert Case.objects.get(pk=case.pk).task == case.task


def test_the_case_page_reads_reviewed_slices_without_a_query_each(case, teammate, owner_client):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(reverse("cases:detail", args=[case.pk])).status_code == 200
        return len(captured)

    verdict, _ = series_with_verdict(case, uid="2.25.30", slices=2)
    SeriesReview.objects.create(verdict=verdict, reviewer=teammate, decision="confirmed", label="glioma")
    few = queries()
    verdict, _ = series_with_verdict(case, uid="2.25.31", slices=12)
    SeriesReview.objects.create(verdict=verdict, reviewer=teammate, decision="confirmed", label="glioma")

    assert queries() == few
