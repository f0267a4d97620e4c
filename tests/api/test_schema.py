"""Schemathesis against the live OpenAPI schema: every operation, both generation modes, all checks."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from brainscan.wsgi import application
from cases.models import StudyImport
from tests.factories import png_bytes

SCHEMA_PATH = "/api/v1/schema/"


@pytest.fixture
def live_app(db, classified):
    """The raw WSGI app closes the database connection after each request; the test's transaction
    lives on that connection, so keep it open as Django's own test client does. A real case, scan,
    prediction and explanation exist, so generated ids can hit real objects."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def owner_token(owner):
    return Token.objects.create(user=owner).key


# Loaded from the live app at collection. (schemathesis.pytest.from_fixture, the lazy loader,
# fails on pytest 9: it sets the removed Item._nodeid.)
schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)


def _point_at_real_objects(case, real):
    """Half of the positive examples name real objects (random ids only ever reach the 404 path);
    an upload to a real case then carries a real image, the one thing a schema cannot describe."""
    if case.meta is None or case.meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return
    path_id = (case.path_parameters or {}).get("id")
    if isinstance(path_id, int) and path_id % 2 == 0:
        resource = case.operation.path.split("/")[3]
        case.path_parameters["id"] = real[resource]
        upload = case.operation.path == "/api/v1/cases/{id}/scans/" and case.method == "POST"
        if upload and isinstance(case.body, dict):
            # In place: schemathesis re-checks a reassigned body against the schema, cannot read
            # binary there, and would count this valid upload as negative data.
            case.body["files"] = [png_bytes()]
        review = case.operation.path == "/api/v1/scans/{id}/review/" and case.method == "POST"
        if review and isinstance(case.body, dict) and case.body.get("label") not in real["labels"]:
            # The schema lists every question's classes; this scan's prediction takes its own
            # model's (a label of another question is a 400, tests/api/test_review_labels.py).
            case.body["label"] = real["labels"][path_id // 2 % len(real["labels"])]
    # Only a team id that is an integer: any other value is the negative part of the example.
    team = case.body.get("team") if isinstance(case.body, dict) else None
    team_level = case.operation.path in ("/api/v1/cases/", "/api/v1/pulls/")
    if team_level and isinstance(team, int) and not isinstance(team, bool):
        case.body["team"] = real["team"]


def _series_with_verdict(prediction):
    """The classified scan as a one-slice series with its verdict, for the series review."""
    from cases.models import Series, Study
    from inference.models import SeriesVerdict

    scan = prediction.scan
    study, _ = Study.objects.get_or_create(case=scan.case, study_uid="2.25.1")
    series, _ = Series.objects.get_or_create(case=scan.case, series_uid="2.25.2", defaults={"study": study})
    type(scan).objects.filter(pk=scan.pk).update(series=series, series_instance=1)
    verdict = {"tumour_suspected": True, "score": 0.98, "label": "glioma", "probability": 0.91}
    verdict["rule"] = {"kind": "max", "k": 1, "threshold": 0.0693}
    version = prediction.model_version
    SeriesVerdict.objects.get_or_create(series=series, model_version=version, defaults=verdict)
    return series


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, live_app, owner_token, classified, team, owner):
    pull = StudyImport.objects.create(
        team=team, requested_by=owner, source="push", status="done", study_key="0" * 64
    )
    real = {
        "cases": classified.scan.case_id,
        "scans": classified.scan_id,
        "models": classified.model_version_id,
        "pulls": pull.pk,
        "series": _series_with_verdict(classified).pk,
    }
    _point_at_real_objects(case, real | {"team": team.pk, "labels": classified.review_labels()})
    # Every check applies: a bare value as a multipart body is a 400 now (brainscan.parsers), not
    # an empty form, so negative_data_rejection no longer needs an exception for it.
    case.call_and_validate(headers={"Authorization": f"Token {owner_token}"})


@schema.parametrize()
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_unauthenticated_calls_are_refused(case, live_app):
    response = case.call()
    if case.operation.path == "/api/v1/auth/token/" and case.method == "POST":
        assert response.status_code in (400, 401, 429), response.text
    else:
        assert response.status_code in (401, 403), (case.method, response.request.url, response.text)


def test_schema_and_docs_are_served_without_a_cdn(client):
    assert client.get(SCHEMA_PATH).status_code == 200
    docs = client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in docs and "/static/drf_spectacular_sidecar/" in docs
    assert "cdn." not in docs and "unpkg" not in docs and "jsdelivr" not in docs


def _openapi():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _as_json_schema(node, components):
    """An OpenAPI 3.0 schema as JSON Schema: references inlined, `nullable` as a null
    alternative, and an object refuses the properties it does not name."""
    if isinstance(node, list):
        return [_as_json_schema(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _as_json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
    converted = {}
    for key, value in node.items():
        if key == "properties":
            converted[key] = {name: _as_json_schema(field, components) for name, field in value.items()}
        elif key not in ("nullable", "readOnly", "writeOnly", "example"):
            converted[key] = _as_json_schema(value, components)
    if "properties" in converted:
        converted.setdefault("additionalProperties", False)
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted


def _json_bodies(openapi):
    """(where, media type object) of every JSON request and response body."""
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                yield f"{method.upper()} {path} request", body
            for code, response in operation["responses"].items():
                body = response.get("content", {}).get("application/json")
                if body:
                    yield f"{method.upper()} {path} {code}", body


def test_path_ids_are_integers():
    openapi = _openapi()
    ids = [
        (path, parameter["schema"])
        for path, operations in openapi["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    ]
    assert ids and all(schema == {"type": "integer"} for _, schema in ids), ids


def test_every_json_body_has_real_examples_that_fit_its_schema():
    import jsonschema

    openapi = _openapi()
    components = openapi["components"]["schemas"]
    bodies = list(_json_bodies(openapi))
    assert len(bodies) > 20
    missing = [where for where, body in bodies if not body.get("examples")]
    assert not missing, missing
    for where, body in bodies:
        validator = jsonschema.Draft202012Validator(_as_json_schema(body["schema"], components))
        for name, example in body["examples"].items():
            errors = [error.message for error in validator.iter_errors(example["value"])]
            assert not errors, (where, name, errors)


def test_review_labels_are_listed_with_the_question_each_belongs_to():
    """Validation takes the prediction's model classes (Prediction.review_labels); the schema says
    so and lists every question's classes, not only the tumour ones."""
    from ml import tasks

    openapi = _openapi()
    body = openapi["paths"]["/api/v1/scans/{id}/review/"]["post"]["requestBody"]["content"][
        "application/json"
    ]
    name = body["schema"]["$ref"].rsplit("/", 1)[1]
    label = openapi["components"]["schemas"][name]["properties"]["label"]
    enum = openapi["components"]["schemas"][label["allOf"][0]["$ref"].rsplit("/", 1)[1]]
    every_class = [c for task in tasks.TASKS.values() for c in task.classes]
    assert sorted(enum["enum"]) == sorted(set(every_class))
    for task in tasks.TASKS.values():
        assert f"{task.label} (`{task.name}`): {', '.join(task.classes)}" in label["description"]
        for cls in task.classes:
            assert f"`{cls}` - a class of {task.label}, `{task.name}`" in enum["description"]
