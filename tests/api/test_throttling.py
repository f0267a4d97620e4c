"""Scoped throttles on token issue and uploads: the next call past the rate is a 429 with Retry-After."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from cases.models import Scan
from tests.factories import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rates(settings):
    settings.API_THROTTLE_RATES = {"api-token": "3/minute", "api-upload": "2/minute"}


def test_token_issue_is_throttled_per_address(low_rates, owner):
    client = APIClient()
    answers = [
        client.post(
            "/api/v1/auth/token/", {"username": "owner", "password": "wrong"}, format="json"
        ).status_code
        for _ in range(4)
    ]
    assert answers == [401, 401, 401, 429]
    refused = client.post(
        "/api/v1/auth/token/",
        {"username": "owner", "password": "correct-horse-battery-staple"},
        format="json",
    )
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert refused.json()["code"] == "throttled" and "token" not in refused.json()


def test_uploads_are_throttled_per_user_and_reads_are_not(low_rates, owner_api, api_for, case):
    def upload(client):
        files = {"files": [SimpleUploadedFile("a.png", png_bytes())]}
        return client.post(f"/api/v1/cases/{case.pk}/scans/", files, format="multipart").status_code

    assert [upload(owner_api) for _ in range(3)] == [202, 202, 429]
    assert Scan.objects.count() == 2
    assert owner_api.get(f"/api/v1/cases/{case.pk}/").status_code == 200
    assert upload(api_for("teammate")) == 202
