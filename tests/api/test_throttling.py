"""Scoped throttles on token issue and uploads: the next call past the rate is a 429 with Retry-After."""

import ipaddress

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


def test_a_spoofed_forwarded_header_does_not_reset_the_token_throttle(low_rates, owner, settings):
    settings.TRUSTED_PROXIES = []
    client = APIClient()
    answers = [
        client.post(
            "/api/v1/auth/token/",
            {"username": "owner", "password": "wrong"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}",
        ).status_code
        for attempt in range(5)
    ]
    assert answers == [401, 401, 401, 429, 429]


def test_behind_a_trusted_proxy_each_client_address_has_its_own_count(low_rates, owner, settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    client = APIClient(REMOTE_ADDR="10.0.0.2")

    def ask(forwarded):
        return client.post(
            "/api/v1/auth/token/",
            {"username": "nobody", "password": "wrong"},
            format="json",
            HTTP_X_FORWARDED_FOR=forwarded,
        ).status_code

    assert [ask("198.51.100.1") for _ in range(4)] == [401, 401, 401, 429]
    assert ask("198.51.100.2") == 401
    # A client that prepends a made-up hop is still counted by the address the proxy saw.
    assert ask("203.0.113.5, 198.51.100.1") == 429
