"""What the API refuses before any view reads it: a NUL in a query parameter (PostgreSQL cannot
compare text holding one) and a JSON body that is not an object (schemathesis found both)."""

import pytest
from rest_framework.test import APIClient

from cases.models import AuditEvent, Case

pytestmark = pytest.mark.django_db

BOUNDARY = "c2743504bac0f8da1539e6afd31882b8"

# Every query parameter an endpoint reads, and one it does not: a NUL in any of them is a 400.
NUL_QUERIES = [
    ("/api/v1/models/", "task"),
    ("/api/v1/models/", "active"),
    ("/api/v1/cases/", "q"),
    ("/api/v1/cases/", "patient"),
    ("/api/v1/cases/", "status"),
    ("/api/v1/cases/", "created_from"),
    ("/api/v1/cases/", "page"),
    ("/api/v1/cases/", "unknown"),
    ("/api/v1/cases/export.csv", "q"),
    ("/api/v1/scans/1/", "anything"),
]


@pytest.mark.parametrize("path,name", NUL_QUERIES)
def test_a_nul_in_any_query_parameter_is_a_400_naming_it(owner_api, case, path, name):
    response = owner_api.get(f"{path}?{name}=a%00b")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "invalid" and name in body["errors"]
    assert "\x00" not in response.content.decode()
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.EXPORT).exists()


def test_a_nul_in_a_parameter_name_is_a_400_too(owner_api):
    response = owner_api.get("/api/v1/models/?ta%00sk=x")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert "\x00" not in response.content.decode()


def test_a_nul_in_a_web_page_query_is_a_400_page(owner_client):
    response = owner_client.get("/cases/?q=a%00b")
    assert response.status_code == 400
    assert "\x00" not in response.content.decode()


def test_models_filter_by_task_still_works(owner_api, classified):
    task = classified.model_version.task
    assert owner_api.get("/api/v1/models/", {"task": task}).json()["count"] == 1
    assert owner_api.get("/api/v1/models/", {"task": "other"}).json()["count"] == 0


# A bare value as the body, as schemathesis sends it in each encoding the operations declare.
BARE_BODIES = {
    "json": [
        ("application/json", body) for body in ("5", "null", '"notes"', "[]", '[{"notes": "x"}]', "true")
    ],
    "form": [("application/x-www-form-urlencoded", body) for body in ("5", "None", "notes")],
    "multipart": [
        (f"multipart/form-data; boundary={BOUNDARY}", f"--{BOUNDARY}\r\n{body}--{BOUNDARY}--\r\n")
        for body in ("5", "None")
    ],
}
BARE = [
    pytest.param(kind, body, id=f"{kind}-{index}")
    for kind, bodies in BARE_BODIES.items()
    for index, body in enumerate(bodies)
]


@pytest.mark.parametrize("kind,body", BARE)
def test_a_body_that_is_not_an_object_creates_no_case(owner_api, kind, body):
    content_type, data = body
    response = owner_api.post("/api/v1/cases/", data, content_type=content_type)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parse_error"
    assert not Case.objects.exists()
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.CASE_CREATE).exists()


@pytest.mark.parametrize("method", ["put", "patch"])
@pytest.mark.parametrize("kind,body", BARE)
def test_update_with_a_non_object_body_is_a_400_and_changes_nothing(owner_api, case, method, kind, body):
    content_type, data = body
    response = owner_api.generic(method.upper(), f"/api/v1/cases/{case.pk}/", data, content_type=content_type)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parse_error"
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.CASE_UPDATE).exists()


def test_a_json_body_that_is_not_an_object_is_told_so(owner_api):
    response = owner_api.post("/api/v1/cases/", "[]", content_type="application/json")
    assert (
        response.json()["detail"]
        == 'The JSON body must be an object of fields, e.g. {"notes": "..."}, not a list.'
    )


@pytest.mark.parametrize("kind,body", BARE)
def test_token_request_with_a_non_object_body_is_a_400(owner, kind, body):
    content_type, data = body
    response = APIClient().post("/api/v1/auth/token/", data, content_type=content_type)
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_object_bodies_and_forms_still_work(owner_api, case):
    assert owner_api.post("/api/v1/cases/", "{}", content_type="application/json").status_code == 201
    form = owner_api.post(
        "/api/v1/cases/", "notes=a+b&patient_reference=", content_type="application/x-www-form-urlencoded"
    )
    assert form.status_code == 201 and form.json()["notes"] == "a b"
    assert owner_api.post("/api/v1/cases/", {"notes": "multipart"}).status_code == 201
    # An empty body is an update that changes nothing, as {} is.
    assert owner_api.patch(f"/api/v1/cases/{case.pk}/").status_code == 200
    response = owner_api.patch(f"/api/v1/cases/{case.pk}/", {"status": "closed"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "closed"
