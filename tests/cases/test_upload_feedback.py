"""What an upload tells the uploader without JavaScript: nothing stored, and why, per file name
(the page's script shows the same from the JSON answer; tests/browser/test_reading_flow.py)."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.models import Scan
from tests.cases.test_upload import jpeg_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    ids = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", ids.append)
    return ids


def test_a_refused_form_upload_says_nothing_was_stored_and_why_per_file_name(owner_client, case):
    files = [
        SimpleUploadedFile("good.jpg", jpeg_bytes()),
        SimpleUploadedFile("notes.jpg", b"hello" * 100),
    ]
    response = owner_client.post(reverse("cases:upload", args=[case.pk]), {"files": files})
    assert response.status_code == 400 and not Scan.objects.exists()
    text = " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())
    assert "Nothing was stored: an upload is stored whole or not at all" in text
    assert "notes.jpg: The content is not a supported image" in text
    assert "good.jpg:" not in text


def test_a_stored_upload_answers_each_scan_for_the_live_count(owner_client, case, enqueued):
    files = [SimpleUploadedFile(f"slice{i}.jpg", jpeg_bytes()) for i in range(3)]
    response = owner_client.post(
        reverse("cases:upload", args=[case.pk]), {"files": files}, HTTP_X_REQUESTED_WITH="XMLHttpRequest"
    )
    assert response.status_code == 201
    ids = [scan["id"] for scan in response.json()["scans"]]
    assert ids == list(Scan.objects.order_by("id").values_list("id", flat=True))
    fragment = owner_client.get(reverse("cases:scans_fragment", args=[case.pk])).content.decode()
    # The script counts "n of m classified" from each scan's status in the polled fragment.
    assert all(f'id="scan-{pk}" tabindex="-1" data-status="checking"' in fragment for pk in ids)
