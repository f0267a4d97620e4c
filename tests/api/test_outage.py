"""The throttles count in Redis (production settings): with Redis down or hung, a throttled request
answers 503 with Retry-After in the API's JSON at once, stores nothing, and reads keep working."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import Scan
from tests.conftest import REPO_ROOT
from tests.factories import png_bytes

pytestmark = pytest.mark.django_db

# A hung Redis must not hold a request longer than this: the cache gives up after 1 s (redis-py
# alone waits 5 s, on every throttled request while Redis hangs).
FAIL_FAST_S = 3


def production_throttle_cache(redis_url):
    """CACHES["api-throttle"] exactly as brainscan.settings.base builds it for this REDIS_URL."""
    script = (
        "import json; from brainscan.settings import base; print(json.dumps(base.CACHES['api-throttle']))"
    )
    env = os.environ | {"REDIS_URL": redis_url, "SECRET_KEY": "x", "PATIENT_REF_KEY": "y"}
    env.pop("CELERY_BROKER_URL", None)
    out = subprocess.run(  # noqa: S603  our own settings module
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def redis_throttles(disposable_redis, settings):
    cache = production_throttle_cache(disposable_redis.url)
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    settings.CACHES = {**settings.CACHES, "api-throttle": cache}
    return disposable_redis


class _Hung(BaseException):
    """Raised by the alarm: not an Exception, so no handler on the way turns it into a response."""


def _within(seconds, call):
    def alarm(signum, frame):
        raise _Hung(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _token(client, password="wrong"):  # noqa: S107  a test account's
    return client.post("/api/v1/auth/token/", {"username": "owner", "password": password}, format="json")


def _is_unavailable(response):
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json" and int(response["Retry-After"]) > 0
    body = response.json()
    assert body["code"] == "service_unavailable" and "retry" in body["detail"].lower()


def _stored_files():
    root = Path(django_settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_token_issue_with_redis_down_is_a_503_not_a_500(redis_throttles, owner):
    client = APIClient()
    assert _token(client).status_code == 401  # counted in Redis
    redis_throttles.stop()
    response = _token(client, password="correct-horse-battery-staple")
    _is_unavailable(response)
    assert not Token.objects.exists()


def test_upload_with_redis_down_is_a_503_that_stores_nothing_and_reads_work(redis_throttles, owner_api, case):
    redis_throttles.stop()
    before = _stored_files()
    files = {"files": [SimpleUploadedFile("a.png", png_bytes())]}
    _is_unavailable(owner_api.post(f"/api/v1/cases/{case.pk}/scans/", files, format="multipart"))
    assert not Scan.objects.exists() and _stored_files() == before
    assert owner_api.get(f"/api/v1/cases/{case.pk}/").status_code == 200
    assert owner_api.get(f"/api/v1/cases/{case.pk}/scans/").status_code == 200
    assert owner_api.get("/api/v1/cases/").status_code == 200


def test_a_hung_redis_is_a_503_within_seconds_and_recovers(redis_throttles, owner):
    client = APIClient()
    assert _token(client).status_code == 401
    redis_throttles.freeze()
    response, elapsed = _within(FAIL_FAST_S * 3, lambda: _token(client))
    _is_unavailable(response)
    assert elapsed < FAIL_FAST_S
    redis_throttles.thaw()
    assert _token(client, password="correct-horse-battery-staple").status_code == 200
