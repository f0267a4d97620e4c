"""Case, scan, review and prediction admin: no add form that cannot work, images only through the
access-checked views, erasure only after a confirmation page."""

import pytest
from django.db import IntegrityError
from django.urls import reverse

from cases.models import Case, Scan
from inference.models import Review
from tests.factories import PredictionFactory, ReviewFactory

pytestmark = pytest.mark.django_db


def test_case_admin_has_no_add_form(admin_client, case):
    listing = admin_client.get(reverse("admin:cases_case_changelist"))
    assert listing.status_code == 200
    assert reverse("admin:cases_case_add").encode() not in listing.content
    assert admin_client.get(reverse("admin:cases_case_add")).status_code == 403
    response = admin_client.post(reverse("admin:cases_case_add"), {"team": case.team_id, "status": "open"})
    assert response.status_code == 403
    assert Case.objects.count() == 1


def test_review_admin_is_read_only(admin_client, owner):
    review = ReviewFactory(reviewer=owner)
    listing = admin_client.get(reverse("admin:inference_review_changelist"))
    assert listing.status_code == 200
    assert reverse("admin:inference_review_add").encode() not in listing.content
    assert admin_client.get(reverse("admin:inference_review_add")).status_code == 403
    assert admin_client.post(reverse("admin:inference_review_add"), {}).status_code == 403
    page = admin_client.get(reverse("admin:inference_review_change", args=[review.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert Review.objects.count() == 1


def test_case_save_reports_the_real_error_not_a_pseudonym_collision(team):
    case = Case(team=team)  # no created_by
    with pytest.raises(IntegrityError) as raised:
        case.save()
    assert "pseudonym" not in str(raised.value)
    assert case.pseudonym == "" and case.pk is None
    assert not Case.objects.exists()


def test_scan_and_prediction_admin_link_to_the_access_checked_images(admin_client, case):
    prediction = PredictionFactory(scan__case=case, explanation="explanations/heat.png")
    scan = prediction.scan
    page = admin_client.get(reverse("admin:cases_scan_change", args=[scan.pk])).content.decode()
    assert reverse("cases:scan_image", args=[scan.pk]) in page
    assert "/media/" not in page
    page = admin_client.get(reverse("admin:inference_prediction_change", args=[prediction.pk]))
    page = page.content.decode()
    assert reverse("cases:explanation_image", args=[prediction.pk]) in page
    assert reverse("cases:scan_image", args=[scan.pk]) in page
    assert "/media/" not in page
    # The links work for the admin who follows them.
    assert admin_client.get(reverse("cases:scan_image", args=[scan.pk])).status_code == 200


def test_erased_scan_admin_shows_no_image_link(admin_client, case):
    scan = Scan.objects.get(pk=PredictionFactory(scan__case=case).scan_id)
    scan.image.delete()
    page = admin_client.get(reverse("admin:cases_scan_change", args=[scan.pk])).content.decode()
    assert reverse("cases:scan_image", args=[scan.pk]) not in page
