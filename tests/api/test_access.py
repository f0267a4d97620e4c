"""Access matrix of every API endpoint: owner, teammate, outsider, steward, anonymous, bad token,
and the team's PACS account (refused everywhere: it only pushes to /dicomweb/studies)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cases.models import Case, Scan, StudyImport
from tests.factories import ModelVersionFactory, png_bytes

from .conftest import ROLES

pytestmark = pytest.mark.django_db


def _png():
    return SimpleUploadedFile("slice.png", png_bytes(), content_type="image/png")


# (name, method, url builder, request kwargs builder, expected status per role in ROLES order)
ENDPOINTS = [
    ("case list", "get", lambda o: "/api/v1/cases/", None, [200, 200, 200, 200, 401, 401, 403]),
    (
        "case create",
        "post",
        lambda o: "/api/v1/cases/",
        lambda o: {"team": o["team"]},
        [201, 201, 400, 201, 401, 401, 403],
    ),
    (
        "case detail",
        "get",
        lambda o: f"/api/v1/cases/{o['case']}/",
        None,
        [200, 200, 404, 200, 401, 401, 403],
    ),
    (
        "case update",
        "patch",
        lambda o: f"/api/v1/cases/{o['case']}/",
        lambda o: {"notes": "seen"},
        [200, 200, 404, 200, 401, 401, 403],
    ),
    (
        "case scans",
        "get",
        lambda o: f"/api/v1/cases/{o['case']}/scans/",
        None,
        [200, 200, 404, 200, 401, 401, 403],
    ),
    (
        "upload",
        "post",
        lambda o: f"/api/v1/cases/{o['case']}/scans/",
        lambda o: {"files": [_png()]},
        [202, 202, 404, 202, 401, 401, 403],
    ),
    (
        "scan detail",
        "get",
        lambda o: f"/api/v1/scans/{o['scan']}/",
        None,
        [200, 200, 404, 200, 401, 401, 403],
    ),
    (
        "scan image",
        "get",
        lambda o: f"/api/v1/scans/{o['scan']}/image/",
        None,
        [200, 200, 404, 200, 401, 401, 403],
    ),
    (
        "explanation",
        "get",
        lambda o: f"/api/v1/scans/{o['scan']}/explanation/",
        None,
        [200, 200, 404, 200, 401, 401, 403],
    ),
    (
        "review",
        "post",
        lambda o: f"/api/v1/scans/{o['scan']}/review/",
        lambda o: {"label": "meningioma"},
        [201, 201, 404, 201, 401, 401, 403],
    ),
    (
        # A blank reason: who may retract is decided before the body is read (the owner uploaded it).
        "retract",
        "post",
        lambda o: f"/api/v1/scans/{o['scan']}/retract/",
        lambda o: {"reason": ""},
        [400, 403, 404, 400, 401, 401, 403],
    ),
    ("export", "get", lambda o: "/api/v1/cases/export.csv", None, [200, 200, 200, 200, 401, 401, 403]),
    ("model list", "get", lambda o: "/api/v1/models/", None, [200, 200, 200, 200, 401, 401, 403]),
    (
        "model detail",
        "get",
        lambda o: f"/api/v1/models/{o['model']}/",
        None,
        [200, 200, 200, 200, 401, 401, 403],
    ),
    ("token revoke", "delete", lambda o: "/api/v1/auth/token/", None, [204, 204, 204, 204, 401, 401, 403]),
]


@pytest.fixture
def objects(case, team, classified):
    return {
        "case": case.pk,
        "team": team.pk,
        "scan": classified.scan_id,
        "model": ModelVersionFactory().pk,
    }


@pytest.mark.parametrize("name, method, url, body, expected", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_access_matrix(api_for, objects, name, method, url, body, expected):
    answers = {}
    for role in ROLES:
        kwargs = {}
        if body is not None:
            kwargs["data"] = body(objects)
            kwargs["format"] = "multipart" if name == "upload" else "json"
        response = getattr(api_for(role), method)(url(objects), **kwargs)
        answers[role] = response.status_code
        if response.status_code in (401, 404):
            assert set(response.json()) == {"detail", "code"}, (role, response.content)
        if role == "pacs_account":
            assert response.json()["code"] == "pacs_account", response.content
    assert answers == dict(zip(ROLES, expected, strict=True))


@pytest.mark.parametrize("role", ["outsider", "anonymous"])
def test_refused_callers_change_nothing(api_for, objects, role):
    client = api_for(role)
    client.patch(
        f"/api/v1/cases/{objects['case']}/", {"notes": "tampered", "status": "closed"}, format="json"
    )
    client.post(f"/api/v1/cases/{objects['case']}/scans/", {"files": [_png()]}, format="multipart")
    client.post(f"/api/v1/scans/{objects['scan']}/review/", {"label": "notumor"}, format="json")
    client.post(f"/api/v1/scans/{objects['scan']}/retract/", {"reason": "tampered"}, format="json")
    case = Case.objects.get(pk=objects["case"])
    assert (case.notes, case.status) == ("", Case.Status.OPEN)
    assert Scan.objects.filter(case=case).count() == 1
    assert not Scan.objects.get(pk=objects["scan"]).predictions.get().reviews.exists()
    assert Scan.objects.get(pk=objects["scan"]).retracted_at is None


def test_outsider_list_and_export_leave_out_other_teams_cases(api_for, objects, case):
    listed = api_for("outsider").get("/api/v1/cases/").json()
    assert listed["count"] == 0 and listed["results"] == []
    csv = b"".join(api_for("outsider").get("/api/v1/cases/export.csv").streaming_content).decode()
    assert case.pseudonym not in csv
    assert (
        case.pseudonym
        in b"".join(api_for("teammate").get("/api/v1/cases/export.csv").streaming_content).decode()
    )


def test_outsider_cannot_open_a_case_in_another_team(api_for, team):
    response = api_for("outsider").post("/api/v1/cases/", {"team": team.pk}, format="json")
    assert response.status_code == 400
    assert "team" in response.json()["errors"]
    assert not Case.objects.filter(team=team).exists()


def test_inactive_users_token_stops_working(api_for, owner):
    client = api_for("owner")
    owner.is_active = False
    owner.save()
    assert client.get("/api/v1/cases/").status_code == 401


def test_session_auth_works_for_the_browser_and_writes_need_csrf(owner, case):
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(owner)
    assert browser.get(f"/api/v1/cases/{case.pk}/").status_code == 200
    response = browser.patch(f"/api/v1/cases/{case.pk}/", {"notes": "x"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/api/v1/cases/{case}/series/"),
        ("post", "/api/v1/series/1/review/"),
        ("get", "/api/v1/pulls/"),
        ("post", "/api/v1/pulls/"),
        ("post", "/api/v1/cases/{case}/pull/"),
        ("get", "/api/v1/cases/{case}/"),
    ],
)
def test_a_pacs_token_is_refused_by_the_series_and_pull_api_too(api_for, case, method, url):
    response = getattr(api_for("pacs_account"), method)(
        url.format(case=case.pk), {"study_uid": "1.2.3"}, format="json"
    )
    assert response.status_code == 403
    assert "PACS account (role 'pacs')" in response.json()["detail"]
    assert not StudyImport.objects.exists()


def test_a_pacs_account_gets_no_token_for_a_password(pacs_account):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    # Say a steward set one in the admin: the account still only pushes.
    pacs_account.set_password("a-long-enough-passphrase")
    pacs_account.save()
    response = APIClient().post(
        "/api/v1/auth/token/",
        {"username": "orthanc-push", "password": "a-long-enough-passphrase"},
        format="json",
    )
    assert response.status_code == 403 and response.json()["code"] == "pacs_account"
    assert not Token.objects.filter(user=pacs_account).exists()
