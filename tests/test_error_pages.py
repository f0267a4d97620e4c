"""Error pages have the site's layout and a way back; the login lock-out says for how long, on the
page and in the API's JSON, with Retry-After."""

import pytest
from django.test import Client, RequestFactory
from django.urls import path, reverse
from rest_framework.test import APIClient

from brainscan.api import server_error


def _boom(request):
    raise RuntimeError("a bug")


# This module doubles as the URLconf of the 500 test (pytest.mark.urls).
urlpatterns = [path("boom/", _boom), path("api/v1/boom/", _boom)]
handler500 = "brainscan.api.server_error"


def _has_layout_and_way_home(html):
    assert '<header class="topbar">' in html and 'class="brand" href="/"' in html
    assert 'href="/">Back to the case list</a>' in html
    assert "/static/css/app.css" in html


@pytest.mark.django_db
def test_404_page_has_the_layout_and_a_link_home(owner_client):
    response = owner_client.get("/cases/999999/")
    assert response.status_code == 404
    html = response.content.decode()
    _has_layout_and_way_home(html)
    assert "Page not found" in html and "owner" in html  # the signed-in user's bar


@pytest.mark.django_db
def test_404_under_the_api_stays_json(owner_client):
    response = owner_client.get("/api/v1/nowhere/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_500_page_renders_without_a_request_context_or_database():
    # No django_db mark: any query while rendering would fail this test.
    response = server_error(RequestFactory().get("/cases/"))
    assert response.status_code == 500
    html = response.content.decode()
    _has_layout_and_way_home(html)
    assert "could not answer" in html


@pytest.mark.urls(__name__)
def test_an_unhandled_error_answers_the_500_page_or_the_apis_json():
    client = Client(raise_request_exception=False)
    page = client.get("/boom/")
    assert page.status_code == 500 and "Back to the case list" in page.content.decode()
    api = client.get("/api/v1/boom/")
    assert api.status_code == 500 and api.json() == {
        "detail": "Internal server error.",
        "code": "server_error",
    }


def _lock_out(client, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "owner", "password": "wrong"})
    return client.post(reverse("login"), {"username": "owner", "password": "correct-horse-battery-staple"})


@pytest.mark.django_db
def test_lockout_page_has_the_layout_says_how_long_and_sends_retry_after(client, owner, settings):
    response = _lock_out(client, settings)
    assert response.status_code == 429
    assert response["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds())) == "900"
    html = response.content.decode()
    _has_layout_and_way_home(html)
    assert "15 minutes" in html
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_lockout_duration_follows_the_setting(client, owner, settings):
    from datetime import timedelta

    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    response = _lock_out(client, settings)
    assert response["Retry-After"] == "60" and "1 minute." in response.content.decode()


@pytest.mark.django_db
def test_token_endpoint_lockout_is_the_apis_json(owner, settings):
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/api/v1/auth/token/", {"username": "owner", "password": "wrong"}, format="json")
    response = client.post(
        "/api/v1/auth/token/",
        {"username": "owner", "password": "correct-horse-battery-staple"},
        format="json",
    )
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json" and response["Retry-After"] == "900"
    body = response.json()
    assert body["code"] == "locked_out" and "15 minutes" in body["detail"] and "token" not in body
