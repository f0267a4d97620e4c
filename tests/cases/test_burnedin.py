"""Burned-in text: an uploaded picture whose pixels show words is held for a data steward, with a
reason that gives counts and never the text; an unreadable check holds, never passes."""

import io
import logging
import shutil

import numpy as np
import pytesseract
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image, ImageDraw, ImageFont

from cases import burnedin
from cases.models import AnonymisationReport, AuditEvent, Scan
from tests.conftest import SHARED_DATASETS, real_mri_images
from tests.privacy.corpus import dicom_slice

pytestmark = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="Debian's tesseract-ocr is not installed (make deps installs it)",
)

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}
BRAIN_CT = SHARED_DATASETS / "brain-ct" / "train" / "tumor"
# Two CT slices whose overlay shows the hospital's and the patient's name, legible at 192 px.
CT_WITH_NAMES = ["ct_tumor_1588.jpg", "ct_tumor_1176.jpg"]
NAME = "KOWALSKI"


def picture_with_text(size=(256, 256)):
    """A dark slice-like picture with a scanner-style overlay: white text in the corners."""
    image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    draw.ellipse((48, 48, size[0] - 48, size[1] - 48), fill=110)
    font = ImageFont.load_default(size=14)
    draw.text((6, 4), f"{NAME} JAN 1961", fill=255, font=font)
    draw.text((6, size[1] - 20), "ST MARY HOSPITAL", fill=255, font=font)
    return image


def png(image):
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def ct_slice(name):
    path = BRAIN_CT / name
    if not path.is_file():
        pytest.skip(f"real CT slices not found at {BRAIN_CT}")
    return path


def upload(client, case, name, data):
    return client.post(
        reverse("cases:upload", args=[case.pk]), {"files": [SimpleUploadedFile(name, data)]}, **XHR
    )


@pytest.mark.parametrize("name", CT_WITH_NAMES)
def test_a_real_ct_slice_with_names_burnt_in_is_held(name):
    with Image.open(ct_slice(name)) as image:
        result = burnedin.check(image)
    assert result.held and result.words >= 3
    assert result.reason.startswith("text found in the picture (")


def test_real_mri_slices_are_not_held():
    for path in real_mri_images(4):
        with Image.open(path) as image:
            result = burnedin.check(image)
        assert not result.held, f"{path.name}: {result.reason}"
        assert result.reason == ""


def test_a_picture_with_drawn_text_is_held_and_a_blank_one_is_not():
    assert burnedin.check(picture_with_text()).held
    assert not burnedin.check(Image.new("L", (256, 256), 0)).held
    assert not burnedin.check(Image.new("L", (256, 256), 200)).held


def test_noise_is_not_read_as_text():
    """Noise (what the upload tests send) reads as a few short, unsure words: not held."""
    for seed in range(3):
        noise = np.random.default_rng(seed).normal(128, 60, (128, 128)).clip(0, 255).astype(np.uint8)
        result = burnedin.check(Image.fromarray(noise))
        assert not result.held, result.reason


def test_dark_text_on_a_light_picture_is_held_too():
    light = Image.eval(picture_with_text(), lambda value: 255 - value)
    assert burnedin.check(light).held


def test_without_tesseract_the_picture_is_held_as_unchecked(monkeypatch):
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    result = burnedin.check(Image.new("L", (64, 64), 0))
    assert result.held and result.words == -1
    assert result.reason == "text check unavailable (tesseract is not installed)"


def test_a_check_past_its_time_limit_holds_the_picture():
    result = burnedin.check(picture_with_text((1024, 1024)), timeout=0.001)
    assert result.held
    assert result.reason == "text check unavailable (it took too long)"


def check_text(scan_id):
    """The worker's first step on a stored scan (no model is active: a clean one ends no_model)."""
    from inference import pipeline

    pipeline.classify_scan(scan_id)
    return Scan.objects.get(pk=scan_id)


def test_an_uploaded_ct_slice_with_text_is_held_by_the_worker_with_its_reason(
    owner_client, case, steward, caplog
):
    data = ct_slice(CT_WITH_NAMES[0]).read_bytes()
    with caplog.at_level(logging.DEBUG):
        response = upload(owner_client, case, "ct.jpg", data)
        text_upload = upload(owner_client, case, "text.png", png(picture_with_text()))
        assert response.status_code == text_upload.status_code == 201
        body = response.json()["scans"][0]
        # Stored unread: the request does not wait for OCR.
        assert body["status"] == "checking" and body["hold_reason"] == ""
        scan = check_text(body["id"])
    assert scan.status == Scan.Status.HELD and scan.hold_reason.startswith("text found in the picture (")
    entry = AnonymisationReport.objects.filter(scans=scan).get().files[0]
    assert entry["held"] is True and entry["text_check"]["words"] >= 3
    # Counts only: the words read (a patient's name) are stored and logged nowhere.
    everything = caplog.text + str(AnonymisationReport.objects.values_list("files", flat=True)[::1])
    everything += str(list(Scan.objects.values_list("hold_reason", flat=True)))
    assert NAME not in everything.upper() and "LORETO" not in everything.upper()

    page = owner_client.get(reverse("cases:detail", args=[case.pk]))
    assert f"Held: {scan.hold_reason}" in page.content.decode()
    assert scan.release(steward) is True
    assert Scan.objects.get(pk=scan.pk).status == Scan.Status.QUEUED
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.SCAN_RELEASE).count() == 1


def test_the_page_says_scans_are_checked_for_text_then_how_many_are_held(owner_client, case):
    response = owner_client.post(
        reverse("cases:upload", args=[case.pk]),
        {"files": [SimpleUploadedFile("text.png", png(picture_with_text()))]},
        follow=True,
    )
    page = response.content.decode()
    assert "checking for burned-in text, then classification" in page
    assert "Checking for burned-in text…" in page and 'data-pending="true"' in page
    assert "Held:" not in page
    check_text(Scan.objects.get().pk)
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "Held: text found in the picture (" in page and 'data-pending="false"' in page


def test_the_api_says_the_scan_is_checked_then_held_and_why(owner, case):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(owner)
    files = [
        SimpleUploadedFile("text.png", png(picture_with_text())),
        SimpleUploadedFile("blank.png", png(Image.new("L", (64, 64)))),
    ]
    response = api.post(f"/api/v1/cases/{case.pk}/scans/", {"files": files}, format="multipart")
    assert response.status_code == 202
    assert [scan["status"] for scan in response.json()["scans"]] == ["checking", "checking"]
    held, clean = (check_text(scan["id"]) for scan in response.json()["scans"])
    held = api.get(f"/api/v1/scans/{held.pk}/").json()
    clean = api.get(f"/api/v1/scans/{clean.pk}/").json()
    assert held["status"] == "held" and held["hold_reason"].startswith("text found in the picture (")
    assert clean["status"] == "done" and clean["hold_reason"] == ""


def test_nobody_but_a_steward_sees_the_pixels_of_a_scan_not_yet_checked(
    owner_client, case, steward, client_for
):
    from rest_framework.test import APIClient

    body = upload(owner_client, case, "text.png", png(picture_with_text())).json()["scans"][0]
    scan = Scan.objects.get(pk=body["id"])
    assert scan.status == Scan.Status.CHECKING
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert reverse("cases:scan_image", args=[scan.pk]) not in page
    assert reverse("cases:viewer", args=[scan.pk]) not in page
    assert owner_client.get(reverse("cases:scan_image", args=[scan.pk])).status_code == 404
    assert owner_client.get(reverse("cases:viewer", args=[scan.pk])).status_code == 404
    api = APIClient()
    api.force_authenticate(case.created_by)
    refused = api.get(f"/api/v1/scans/{scan.pk}/image/")
    assert refused.status_code == 409 and refused.json()["code"] == "awaiting_text_check"
    # A steward decides on such scans: they see them.
    assert client_for(steward).get(reverse("cases:scan_image", args=[scan.pk])).status_code == 200


def test_a_held_scan_is_shown_to_stewards_only_until_released(owner_client, case, steward, client_for):
    """Text found in the pixels (a name, perhaps): held, and hidden from clinicians until a
    steward has looked and released it."""
    from rest_framework.test import APIClient

    body = upload(owner_client, case, "text.png", png(picture_with_text())).json()["scans"][0]
    scan = check_text(body["id"])
    assert scan.status == Scan.Status.HELD
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert reverse("cases:scan_image", args=[scan.pk]) not in page
    assert "Image shown once a data steward releases it" in page
    assert owner_client.get(reverse("cases:scan_image", args=[scan.pk])).status_code == 404
    assert owner_client.get(reverse("cases:viewer", args=[scan.pk])).status_code == 404
    api = APIClient()
    api.force_authenticate(case.created_by)
    refused = api.get(f"/api/v1/scans/{scan.pk}/image/")
    assert refused.status_code == 409 and refused.json()["code"] == "held_for_steward"
    assert client_for(steward).get(reverse("cases:scan_image", args=[scan.pk])).status_code == 200
    scan.release(steward)
    assert owner_client.get(reverse("cases:scan_image", args=[scan.pk])).status_code == 200


def test_dicom_text_check_follows_the_header(owner_client, case, monkeypatch):
    """YES is held without reading; NO is taken at its word; a header that says nothing is read."""
    read = []
    real_check = burnedin.check
    monkeypatch.setattr(
        burnedin, "check", lambda picture, **kw: read.append(picture.size) or real_check(picture, **kw)
    )
    for name, data in [
        ("yes.dcm", dicom_slice(burned_in=True)),
        ("no.dcm", dicom_slice(instance=2)),
    ]:
        assert upload(owner_client, case, name, data).status_code == 201
    yes, no = (check_text(scan.pk) for scan in Scan.objects.filter(case=case).order_by("id"))
    assert read == []
    assert yes.status == Scan.Status.HELD and yes.hold_reason == burnedin.HEADER_REASON
    assert no.status == Scan.Status.DONE and no.hold_reason == ""

    silent = _without_burned_in_annotation(dicom_slice(instance=3))
    assert upload(owner_client, case, "silent.dcm", silent).status_code == 201
    assert read == []  # not in the request
    last = check_text(Scan.objects.filter(case=case).order_by("id").last().pk)
    assert read == [(64, 64)]
    assert last.status == Scan.Status.DONE


def _without_burned_in_annotation(data):
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(data))
    del dataset.BurnedInAnnotation
    out = io.BytesIO()
    dataset.save_as(out)
    return out.getvalue()
