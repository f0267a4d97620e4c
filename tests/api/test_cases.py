"""Cases, uploads, results, reviews, export and tokens through the API: behaviour and audit."""

import csv
import io
import os

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import AuditEvent, Case, Scan
from inference.models import Review
from tests.factories import CaseFactory, PredictionFactory, ScanFactory, png_bytes

pytestmark = pytest.mark.django_db


def _audit(verb):
    return list(AuditEvent.objects.filter(verb=verb))


def test_create_case_hashes_the_patient_reference_and_is_audited(owner_api, owner, team):
    response = owner_api.post(
        "/api/v1/cases/", {"notes": "headache", "patient_reference": "MRN 123"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    case = Case.objects.get(pk=body["id"])
    assert body["pseudonym"] == case.pseudonym and body["team"] == team.pk and body["status"] == "open"
    assert "patient_reference" not in body and "MRN" not in response.content.decode()
    assert len(body["patient_ref_hash"]) == 64 and case.created_by == owner
    [event] = _audit(AuditEvent.Verb.CASE_CREATE)
    assert (event.actor, event.object_id) == (owner, str(case.pk))


def test_case_list_uses_the_web_filters_and_paginates(owner_api, owner, team):
    closed = CaseFactory(team=team, created_by=owner, status=Case.Status.CLOSED)
    CaseFactory(team=team, created_by=owner)
    listed = owner_api.get("/api/v1/cases/", {"status": "closed"}).json()
    assert [c["id"] for c in listed["results"]] == [closed.pk] and listed["count"] == 1
    assert owner_api.get("/api/v1/cases/", {"q": closed.pseudonym[:8]}).json()["count"] >= 1
    bad = owner_api.get("/api/v1/cases/", {"created_from": "yesterday"})
    assert bad.status_code == 400 and "created_from" in bad.json()["errors"]
    assert owner_api.get("/api/v1/cases/", {"status": ""}).status_code == 400


@pytest.mark.parametrize(
    "query",
    ["page=1&page=2", "page=", "page=2&page=", "status=open&status=closed", "q=a&q=b"],
)
def test_case_list_refuses_a_repeated_or_empty_page_or_filter(owner_api, case, query):
    """Django reads the last of repeated values and DRF reads an empty page as page 1: both would
    answer a question the client did not ask."""
    response = owner_api.get(f"/api/v1/cases/?{query}")
    assert response.status_code == 400, response.content
    name = query.split("=")[0]
    assert name in response.json()["errors"]
    assert owner_api.get("/api/v1/cases/?page=1").status_code == 200


def test_retrieve_and_update_are_audited_like_the_web(owner_api, owner, case):
    assert owner_api.get(f"/api/v1/cases/{case.pk}/").status_code == 200
    response = owner_api.patch(
        f"/api/v1/cases/{case.pk}/", {"status": "closed", "notes": "done"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "closed"
    case.refresh_from_db()
    assert (case.status, case.notes) == ("closed", "done")
    assert [e.object_id for e in _audit(AuditEvent.Verb.CASE_VIEW)] == [str(case.pk)]
    [update] = _audit(AuditEvent.Verb.CASE_UPDATE)
    assert update.detail == {"fields": ["notes", "status"]}


@pytest.mark.parametrize(
    "body,format,field",
    [
        ({"notes": "headache", "patient_reference": 12345}, "json", "patient_reference"),  # not text
        ({"notes": 3.5}, "json", "notes"),
        ({"notes": "headache", "team": ""}, "multipart", "team"),  # an empty form field is no team
    ],
)
def test_create_refuses_what_the_schema_refuses_and_stores_nothing(owner_api, team, body, format, field):
    response = owner_api.post("/api/v1/cases/", body, format=format)
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == [field]
    assert not Case.objects.exists()


def test_update_refuses_bad_status_and_other_fields(owner_api, case):
    response = owner_api.patch(f"/api/v1/cases/{case.pk}/", {"status": "deleted"}, format="json")
    assert response.status_code == 400 and "status" in response.json()["errors"]
    pseudonym = case.pseudonym
    owner_api.patch(f"/api/v1/cases/{case.pk}/", {"pseudonym": "chosen-name-1"}, format="json")
    case.refresh_from_db()
    assert case.pseudonym == pseudonym and case.status == "open"


def test_upload_answers_202_with_each_scan_and_enqueues_once_committed(
    owner_api, owner, case, django_capture_on_commit_callbacks, monkeypatch
):
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    files = [SimpleUploadedFile(f"IMG_{n}.png", png_bytes(colour=n * 40)) for n in (1, 2)]
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(f"/api/v1/cases/{case.pk}/scans/", {"files": files}, format="multipart")
    assert response.status_code == 202, response.content
    scans = response.json()["scans"]
    assert [s["status"] for s in scans] == ["checking", "checking"]
    assert sorted(enqueued) == sorted(s["id"] for s in scans)
    assert all(s["url"].endswith(f"/api/v1/scans/{s['id']}/") for s in scans)
    assert all(s["image_url"].endswith(f"/api/v1/scans/{s['id']}/image/") for s in scans)
    assert "IMG_" not in response.content.decode()
    [event] = _audit(AuditEvent.Verb.UPLOAD)
    assert event.detail == {"scans": [s["id"] for s in scans]}


def test_a_closed_case_refuses_uploads_reviews_and_notes_until_reopened(owner_api, case, classified):
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED)
    before = _stored_files()
    refused = {
        "upload": owner_api.post(
            f"/api/v1/cases/{case.pk}/scans/", {"files": [SimpleUploadedFile("a.png", png_bytes())]}
        ),
        "review": owner_api.post(
            f"/api/v1/scans/{classified.scan_id}/review/", {"label": "notumor"}, format="json"
        ),
        "notes": owner_api.patch(f"/api/v1/cases/{case.pk}/", {"notes": "later"}, format="json"),
    }
    for name, action in [
        ("upload", "upload scans"),
        ("review", "review its scans"),
        ("notes", "change its notes"),
    ]:
        assert refused[name].status_code == 409, (name, refused[name].content)
        assert refused[name].json() == {
            "detail": f"Case {case.pseudonym} is closed, so it is read-only: reopen it to {action}.",
            "code": "case_closed",
        }
    assert Scan.objects.filter(case=case).count() == 1 and _stored_files() == before
    assert not Review.objects.exists()
    case.refresh_from_db()
    assert (case.status, case.notes) == ("closed", "")

    reopened = owner_api.patch(f"/api/v1/cases/{case.pk}/", {"status": "open"}, format="json")
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"
    again = owner_api.post(
        f"/api/v1/cases/{case.pk}/scans/", {"files": [SimpleUploadedFile("a.png", png_bytes())]}
    )
    assert again.status_code == 202


def test_retract_a_scan_through_the_api(owner_api, api_for, owner, case, classified):
    scan_id = classified.scan_id
    assert owner_api.post(f"/api/v1/scans/{scan_id}/retract/", {}, format="json").status_code == 400
    refused = api_for("teammate").post(
        f"/api/v1/scans/{scan_id}/retract/", {"reason": "wrong"}, format="json"
    )
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert "Only the clinician who uploaded scan" in refused.json()["detail"]

    response = owner_api.post(
        f"/api/v1/scans/{scan_id}/retract/", {"reason": "photo of a form"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    scan = Scan.objects.get(pk=scan_id)
    assert body == {
        "id": scan_id,
        "case": case.pk,
        "sha256": scan.sha256,
        "retracted_by": "owner",
        "retracted_at": body["retracted_at"],
        "reason": "photo of a form",
    }
    assert scan.retracted_at is not None and scan.image.name == ""
    for path in ("", "image/", "explanation/", "retract/"):
        method = owner_api.post if path == "retract/" else owner_api.get
        assert method(f"/api/v1/scans/{scan_id}/{path}").status_code == 404, path
    assert owner_api.get(f"/api/v1/cases/{case.pk}/scans/").json() == []
    [event] = _audit(AuditEvent.Verb.SCAN_RETRACT)
    assert (event.actor, event.object_id, event.detail["case"]) == (owner, str(scan_id), case.pk)


def test_retracting_on_a_closed_case_is_a_409(owner_api, case, classified):
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED)
    response = owner_api.post(
        f"/api/v1/scans/{classified.scan_id}/retract/", {"reason": "wrong"}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "case_closed"
    assert Scan.objects.get(pk=classified.scan_id).retracted_at is None


def _stored_files():
    root = os.path.join(settings.MEDIA_ROOT, "scans")
    return {os.path.join(d, f) for d, _, names in os.walk(root) for f in names}


def test_a_bad_file_gets_its_own_message_and_nothing_is_stored(owner_api, case):
    before = _stored_files()
    files = [
        SimpleUploadedFile("good.png", png_bytes()),
        SimpleUploadedFile("notes.png", b"this is text, not an image"),
        SimpleUploadedFile("cut.png", png_bytes()[:60]),
    ]
    response = owner_api.post(f"/api/v1/cases/{case.pk}/scans/", {"files": files}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_files"
    assert [(f["file"], f["name"]) for f in body["files"]] == [(2, "notes.png"), (3, "cut.png")]
    assert "not a supported image" in body["files"][0]["message"]
    assert "decoded completely" in body["files"][1]["message"]
    assert not Scan.objects.exists()
    assert _stored_files() == before
    assert _audit(AuditEvent.Verb.UPLOAD_REJECTED)[0].detail == {"files": 2}


def test_upload_without_files_is_a_clear_400(owner_api, case):
    response = owner_api.post(f"/api/v1/cases/{case.pk}/scans/", {}, format="multipart")
    assert response.status_code == 400
    assert response.json()["files"][0]["message"] == "Choose at least one image to upload."


def test_scan_result_carries_prediction_review_and_file_links(owner_api, owner, classified):
    scan_id = classified.scan_id
    body = owner_api.get(f"/api/v1/scans/{scan_id}/").json()
    assert (body["status"], body["outcome"], body["failure_reason"]) == ("done", "classified", "")
    prediction = body["prediction"]
    assert prediction["label"] == "glioma" and prediction["confidence"] == pytest.approx(0.91)
    assert set(prediction["probabilities"]) == {"glioma", "meningioma", "notumor", "pituitary"}
    assert prediction["model_version"] == str(classified.model_version) and prediction["latency_ms"] == 120.0
    assert body["review"] is None
    image = owner_api.get(body["image_url"])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    explanation = owner_api.get(body["explanation_url"])
    assert explanation.status_code == 200 and b"".join(explanation.streaming_content).startswith(b"\x89PNG")
    # Reading a finished result is a case access.
    [view] = _audit(AuditEvent.Verb.CASE_VIEW)
    assert view.object_id == str(classified.scan.case_id) and view.detail == {"scan": scan_id}

    review = owner_api.post(
        f"/api/v1/scans/{scan_id}/review/", {"label": "meningioma", "comment": "rim"}, format="json"
    )
    assert review.status_code == 201 and review.json()["decision"] == "corrected"
    assert owner_api.get(f"/api/v1/scans/{scan_id}/").json()["review"]["label"] == "meningioma"
    classified.refresh_from_db()
    assert classified.label == "glioma"  # the prediction itself is never edited
    [event] = _audit(AuditEvent.Verb.REVIEW)
    assert event.detail == {"decision": "corrected", "label": "meningioma", "case": classified.scan.case_id}


def test_scan_result_carries_the_acquisition_attributes_read_only(owner_api, case):
    attributes = {"Modality": "MR", "SeriesDescription": "AX T2 FLAIR", "EchoTime": "93.5"}
    window = {"center": "1100", "width": "1800", "preview_center": 142.5, "preview_width": 284.9}
    # A key outside the allow-list, or a description that is not clean, never leaves the server.
    stored = attributes | {"ProtocolName": "Quarrington protocol"}
    dicom = ScanFactory(
        case=case, modality=Scan.Modality.DICOM, acquisition={"attributes": stored, "window": window}
    )
    unclean = ScanFactory(
        case=case,
        modality=Scan.Modality.DICOM,
        acquisition={"attributes": {"SeriesDescription": "Ax T2 Quarrington"}},
    )
    image = ScanFactory(case=case)
    body = owner_api.get(f"/api/v1/scans/{dicom.pk}/").json()
    assert body["acquisition"] == {"attributes": attributes, "window": window}
    assert owner_api.get(f"/api/v1/scans/{unclean.pk}/").json()["acquisition"] == {
        "attributes": {},
        "window": None,
    }
    assert owner_api.get(f"/api/v1/scans/{image.pk}/").json()["acquisition"] is None
    # Read-only: the scan resource takes no writes.
    assert (
        owner_api.patch(f"/api/v1/scans/{dicom.pk}/", {"acquisition": {}}, format="json").status_code == 405
    )


def test_review_refuses_unknown_labels_and_scans_without_prediction(owner_api, owner, case, classified):
    bad = owner_api.post(f"/api/v1/scans/{classified.scan_id}/review/", {"label": "cat"}, format="json")
    assert bad.status_code == 400 and "label" in bad.json()["errors"]
    owner_api.post(f"/api/v1/cases/{case.pk}/scans/", {"files": [SimpleUploadedFile("a.png", png_bytes())]})
    pending = Scan.objects.filter(status=Scan.Status.CHECKING).get()
    response = owner_api.post(f"/api/v1/scans/{pending.pk}/review/", {"label": "glioma"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "conflict"
    assert owner_api.get(f"/api/v1/scans/{pending.pk}/explanation/").status_code == 404


def test_a_scan_refused_for_its_modality_cannot_be_reviewed(owner_api, case):
    scan = ScanFactory(case=case, status=Scan.Status.DONE, outcome=Scan.Outcome.WRONG_MODALITY)
    PredictionFactory(scan=scan, label=None, tumour_suspected=False)
    response = owner_api.post(f"/api/v1/scans/{scan.pk}/review/", {"label": "glioma"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json() == {
        "detail": f"Scan {scan.pk} was refused as not a slice the Tumour (MRI) question reads: "
        "it cannot carry a diagnostic label.",
        "code": "wrong_modality",
    }
    assert not Review.objects.exists() and not _audit(AuditEvent.Verb.REVIEW)


def test_export_is_the_web_csv_and_is_audited_with_its_filters(owner_api, owner_client, classified):
    api = owner_api.get("/api/v1/cases/export.csv", {"status": "open"}, HTTP_ACCEPT="text/csv")
    web = owner_client.get("/cases/export.csv", {"status": "open"})
    assert api.status_code == 200 and api["Content-Type"] == "text/csv; charset=utf-8"
    assert api["Content-Disposition"].startswith('attachment; filename="brainscan-cases-')
    api_rows = list(csv.reader(io.StringIO(b"".join(api.streaming_content).decode())))
    web_rows = list(csv.reader(io.StringIO(b"".join(web.streaming_content).decode())))
    assert api_rows == web_rows and len(api_rows) == 2
    events = _audit(AuditEvent.Verb.EXPORT)
    assert [e.detail for e in events] == [{"filters": {"status": "open"}}] * 2
    bad = owner_api.get("/api/v1/cases/export.csv", {"created_to": "soon"})
    assert bad.status_code == 400 and len(_audit(AuditEvent.Verb.EXPORT)) == 2


def test_models_list_marks_the_active_version_with_its_metrics(owner_api, classified):
    version = classified.model_version
    version.metrics = {"accuracy": 0.93}
    version.save()
    version.activate()
    listed = owner_api.get("/api/v1/models/").json()["results"]
    assert [(m["id"], m["is_active"], m["metrics"]) for m in listed] == [
        (version.pk, True, {"accuracy": 0.93})
    ]
    assert owner_api.get("/api/v1/models/", {"active": "false"}).json()["count"] == 0
    assert owner_api.get("/api/v1/models/", {"active": "maybe"}).status_code == 400


def test_token_issue_and_revoke(owner):
    client = APIClient()
    issued = client.post(
        "/api/v1/auth/token/", {"username": "owner", "password": "correct-horse-battery-staple"}
    )
    assert issued.status_code == 200
    token = issued.json()["token"]
    assert Token.objects.get(user=owner).key == token
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/cases/").status_code == 200
    assert client.delete("/api/v1/auth/token/").status_code == 204
    assert not Token.objects.filter(user=owner).exists()
    assert client.get("/api/v1/cases/").status_code == 401
    assert [e.detail for e in AuditEvent.objects.filter(actor=owner).order_by("id")] == [
        {"method": "api-token"},
        {"method": "api-token"},
    ]


def test_wrong_password_is_401_without_a_token_and_is_audited(owner):
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "owner", "password": "wrong"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed" and "token" not in response.json()
    assert not Token.objects.exists()
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.LOGIN_FAILED).detail == {"username": "owner"}


def test_errors_are_json_without_internals(owner_api):
    for response in (
        owner_api.get("/api/v1/nowhere/"),
        owner_api.get("/api/v1/scans/abc/"),
        owner_api.post("/api/v1/cases/", "{not json", content_type="application/json"),
    ):
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert {"detail", "code"} <= set(body) and "Traceback" not in response.content.decode()


@pytest.mark.parametrize("path", ["/api/v1/cases/", "/api/v1/cases/export.csv"])
def test_an_error_that_echoes_the_input_carries_no_nul_character(owner_api, path):
    # The schema promises text without NUL; a NUL in a query is refused before a form echoes it.
    response = owner_api.get(path, {"flag": "a\x00b"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and list(body["errors"]) == ["flag"]
    assert "\x00" not in response.content.decode()


def test_upload_over_the_pixel_budget_is_a_json_413_and_stores_nothing(owner_api, case, settings):
    settings.UPLOAD_MAX_TOTAL_PIXELS = 5_000
    before = _stored_files()
    files = [SimpleUploadedFile(f"{n}.png", png_bytes(colour=n)) for n in (1, 2)]
    response = owner_api.post(f"/api/v1/cases/{case.pk}/scans/", {"files": files}, format="multipart")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "upload_too_large" and "at most 5,000 pixels" in body["detail"]
    assert not Scan.objects.exists() and _stored_files() == before
    assert _audit(AuditEvent.Verb.UPLOAD_REJECTED)[0].detail == {"reason": "upload_too_large"}


def test_upload_past_its_time_budget_is_a_json_503_with_retry_after(owner_api, case, settings, monkeypatch):
    from cases import uploads

    settings.UPLOAD_MAX_SECONDS = 1
    ticks = iter([0.0, 0.5, 2.0])  # start, before file 1, before file 2 (past the budget)
    monkeypatch.setattr(uploads, "monotonic", lambda: next(ticks))
    files = [SimpleUploadedFile(f"{n}.png", png_bytes(colour=n)) for n in (1, 2)]
    response = owner_api.post(f"/api/v1/cases/{case.pk}/scans/", {"files": files}, format="multipart")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json" and response["Retry-After"] == "60"
    assert response.json()["code"] == "upload_timeout"
    assert not Scan.objects.exists()
