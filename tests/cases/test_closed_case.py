"""A closed case is read-only until it is reopened: no uploads, reviews, retractions or note
changes, by page (a message) or by a stale form's POST; setting its status back to open works."""

from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.forms import ReviewForm
from cases.models import AuditEvent, Case, CaseClosed, Scan
from cases.uploads import store_scans, validate_files
from inference.models import Review
from tests.factories import CaseFactory, PredictionFactory, ScanFactory, png_bytes

pytestmark = pytest.mark.django_db

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}


@pytest.fixture
def closed(owner, team):
    return CaseFactory(team=team, created_by=owner, status=Case.Status.CLOSED, notes="resolved")


@pytest.fixture
def enqueued(monkeypatch):
    ids = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", ids.append)
    return ids


def stored_files():
    root = Path(default_storage.location)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _png():
    return SimpleUploadedFile("slice.png", png_bytes(), content_type="image/png")


def test_closed_case_page_has_no_upload_panel_or_review_form_and_says_why(owner_client, closed):
    prediction = PredictionFactory(scan=ScanFactory(case=closed))
    page = owner_client.get(reverse("cases:detail", args=[closed.pk])).content.decode()
    assert (
        'id="upload-form"' not in page and f'action="{reverse("cases:upload", args=[closed.pk])}"' not in page
    )
    assert reverse("cases:review", args=[prediction.pk]) not in page
    assert "This case is closed, so it is read-only" in page
    # Reopening stays possible from the page.
    assert reverse("cases:update", args=[closed.pk]) in page


@pytest.mark.parametrize("xhr", [True, False], ids=["xhr", "form"])
def test_upload_to_a_closed_case_is_refused_with_a_message_and_stores_nothing(
    owner_client, closed, enqueued, xhr
):
    before = stored_files()
    response = owner_client.post(
        reverse("cases:upload", args=[closed.pk]), {"files": [_png()]}, **(XHR if xhr else {})
    )
    message = f"Case {closed.pseudonym} is closed, so it is read-only: reopen it to upload scans."
    if xhr:
        assert response.status_code == 409
        assert response.json() == {"errors": [{"file": 0, "name": "", "message": message}]}
    else:
        assert response.status_code == 302
        page = owner_client.get(response["Location"]).content.decode()
        assert message in page
    assert not Scan.objects.exists() and stored_files() == before and enqueued == []
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.UPLOAD).exists()


def test_a_case_closed_while_an_upload_was_checked_stores_nothing(owner, case, enqueued):
    images, errors = validate_files([_png()])
    assert not errors
    before = stored_files()
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED)  # closed by a teammate meanwhile
    with pytest.raises(CaseClosed):
        store_scans(case, owner, images)
    assert not Scan.objects.exists() and stored_files() == before and enqueued == []


def test_review_on_a_closed_case_is_refused(client_for, teammate, closed):
    prediction = PredictionFactory(scan=ScanFactory(case=closed))
    response = client_for(teammate).post(
        reverse("cases:review", args=[prediction.pk]), {f"p{prediction.pk}-label": "meningioma"}, follow=True
    )
    assert not Review.objects.exists()
    assert "is closed, so it is read-only: reopen it to review its scans." in response.content.decode()


def test_notes_of_a_closed_case_stay_until_it_is_reopened(owner_client, closed, enqueued):
    update = reverse("cases:update", args=[closed.pk])
    response = owner_client.post(update, {"status": "closed", "notes": "changed"}, follow=True)
    assert "reopen it to change its notes" in response.content.decode()
    closed.refresh_from_db()
    assert (closed.status, closed.notes) == ("closed", "resolved")
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.CASE_UPDATE).exists()

    owner_client.post(update, {"status": "open", "notes": "resolved"})
    closed.refresh_from_db()
    assert closed.status == "open"
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.CASE_UPDATE)
    assert event.detail == {"fields": ["status"]}
    response = owner_client.post(reverse("cases:upload", args=[closed.pk]), {"files": [_png()]}, **XHR)
    assert response.status_code == 201 and Scan.objects.filter(case=closed).count() == 1


def test_closing_a_case_with_a_last_note_is_one_change(owner_client, case):
    owner_client.post(reverse("cases:update", args=[case.pk]), {"status": "closed", "notes": "benign"})
    case.refresh_from_db()
    assert (case.status, case.notes) == ("closed", "benign")


def test_a_review_saved_just_after_the_case_was_closed_is_refused(teammate, case):
    prediction = PredictionFactory(scan=ScanFactory(case=case))
    form = ReviewForm({"label": "glioma"}, prediction=prediction)
    assert form.is_valid()
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED)
    with pytest.raises(CaseClosed):
        form.save(reviewer=teammate)
    assert not Review.objects.exists()
