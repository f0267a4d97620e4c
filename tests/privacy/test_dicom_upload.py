"""DICOM upload: de-identified per the basic profile before storage, nothing identifying anywhere.

The corpus (tests/privacy/corpus.py) carries identifying values in every attribute the
profile covers, a private block, an overlay and a tell-tale preamble; after upload no
identifying string may remain in the stored files, the database, the responses or the logs.
"""

import hashlib
import io
import logging
import re
from datetime import datetime

import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from cases import dicomread
from cases.models import AnonymisationReport, Scan
from inference import pipeline
from ml.preprocess import decode, dicom_pixels
from tests.factories import CaseFactory, ModelVersionFactory

from .corpus import NEEDLES, UIDS, corpus, dicom_slice, no_image_dicom

pytestmark = pytest.mark.django_db

# The client's file names carry identity too (a common PACS export habit).
CLIENT_NAME = "Kowalczyk_Henrietta_MRN8830417_{}.dcm"


def upload(client, case, files):
    payload = [SimpleUploadedFile(name, data, content_type="application/dicom") for name, data in files]
    return client.post(reverse("cases:upload", args=[case.pk]), {"files": payload})


# Digit runs that are random by construction: the new UIDs ("2.25." and about 59 digits of a
# hash keyed by SECRET_KEY and the case), hex digests and names (SHA-256, UUID file names, tokens)
# and the sub-second digits of timestamps. A short numeric needle such as the StudyTime "134512"
# turns up in them by chance (in the new UIDs of one corpus upload about once in 2,000 runs), and
# none of them can carry an identifier, so they are masked before the search.
RANDOM_DIGITS = re.compile(r"2\.25\.\d+|\b[0-9a-f]{32,}\b|(?<=\d\d:\d\d:\d\d)\.\d+")


def leaks(blob: str | bytes) -> list[str]:
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
    text = RANDOM_DIGITS.sub("<random>", text).lower()
    return [needle for needle in NEEDLES if needle.lower() in text]


def database_text() -> str:
    """Every row of every table, as text: what a database dump would show (times in ISO 8601)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 -- our table names
            for row in cursor.fetchall():
                chunks.append(repr(tuple(v.isoformat() if isinstance(v, datetime) else v for v in row)))
    return "\n".join(chunks)


@pytest.fixture
def uploaded(case, owner_client, caplog, capfd, django_capture_on_commit_callbacks, monkeypatch):
    """Upload the whole corpus at once; returns (response, scans, captured log + stderr text)."""
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    caplog.set_level(logging.DEBUG)
    files = [(CLIENT_NAME.format(name), data) for name, data in corpus().items()]
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(owner_client, case, files)
    # The worker's first step, its log captured too: each scan is read for burned-in text.
    checked = [pipeline.check_text(scan.pk) for scan in Scan.objects.filter(case=case)]
    assert None not in checked
    out, err = capfd.readouterr()
    scans = list(Scan.objects.filter(case=case).order_by("id"))
    return response, scans, caplog.text + out + err, enqueued


def test_every_file_is_stored_deidentified_and_queued(uploaded):
    response, scans, _, enqueued = uploaded
    assert response.status_code == 302
    assert len(scans) == len(corpus())
    assert enqueued == [scan.pk for scan in scans]
    for scan in scans:
        assert scan.modality == Scan.Modality.DICOM
        assert scan.image.name.endswith(".dcm") and "Kowalczyk" not in scan.image.name
        with scan.image.open("rb") as stored:
            data = stored.read()
        assert leaks(data) == [], scan.image.name
        dataset = pydicom.dcmread(io.BytesIO(data))
        assert dataset.PatientIdentityRemoved == "YES"
        assert dataset.DeidentificationMethod
        assert dataset.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert not any(element.tag.is_private for element in dataset.iterall())
        assert not any(0x6000 <= element.tag.group <= 0x60FF for element in dataset.iterall())
        assert dataset.preamble == b"\0" * 128
        assert (scan.width, scan.height) == (dataset.Columns, dataset.Rows)
        assert scan.sha256 == hashlib.sha256(data).hexdigest()


def test_no_identifier_in_database_responses_or_logs(uploaded, owner_client, case):
    response, scans, logs, _ = uploaded
    assert leaks(database_text()) == []
    assert leaks(logs) == []
    page = owner_client.get(reverse("cases:detail", args=[case.pk]))
    assert page.status_code == 200
    assert leaks(page.content) == []
    preview = owner_client.get(reverse("cases:scan_image", args=[scans[0].pk]))
    assert preview["Content-Type"] == "image/png"
    assert leaks(b"".join(preview.streaming_content) if preview.streaming else preview.content) == []


def test_uids_are_replaced_consistently_within_a_case_only(uploaded, owner_client, team, owner):
    _, scans, _, _ = uploaded

    def header(scan):
        with scan.image.open("rb") as stored:
            return pydicom.dcmread(stored)

    first = [header(scan) for scan in scans]
    studies = {ds.StudyInstanceUID for ds in first}
    assert len(studies) == 1 and UIDS["StudyInstanceUID"] not in studies
    assert len({ds.SOPInstanceUID for ds in first}) == len(first)
    assert all(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID for ds in first)
    assert first[0].SOPClassUID == pydicom.uid.MRImageStorage  # registered UIDs are not identifiers

    # A later upload to the same case maps the same source study to the same new UID ...
    case = scans[0].case
    upload(owner_client, case, [("a.dcm", dicom_slice(instance=9))])
    later = header(Scan.objects.filter(case=case).latest("id"))
    assert later.StudyInstanceUID in studies
    # ... and another case (another patient's episode) gets a different one: no linkage.
    other = CaseFactory(team=team, created_by=owner)
    upload(owner_client, other, [("a.dcm", dicom_slice(instance=9))])
    assert header(Scan.objects.get(case=other)).StudyInstanceUID not in studies


def test_anonymisation_report_names_what_was_removed_without_values(uploaded):
    _, scans, _, _ = uploaded
    report = AnonymisationReport.objects.get()
    assert {entry["scan"] for entry in report.files} == {scan.pk for scan in scans}
    entry = report.files[0]
    assert entry["format"] == "DICOM"
    assert {"InstitutionName", "StationName", "DeviceSerialNumber", "StudyDescription"} <= set(
        entry["removed"]
    )
    assert {"PatientName", "PatientID", "PatientBirthDate", "OperatorsName"} <= set(entry["blanked"])
    assert {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"} <= set(entry["replaced"])
    assert entry["private_tags_removed"] >= 1
    assert entry["overlay_elements_removed"] >= 1
    assert leaks(repr(report.files)) == []


def test_model_input_is_rescaled_windowed_and_upright(uploaded):
    _, scans, _, _ = uploaded
    by_instance = {}
    for scan in scans:
        with scan.image.open("rb") as stored:
            data = stored.read()
        by_instance[int(pydicom.dcmread(io.BytesIO(data)).InstanceNumber)] = data
    raw = pydicom.dcmread(io.BytesIO(by_instance[2])).pixel_array.astype(float)
    rescaled = dicom_pixels(by_instance[2])
    # MONOCHROME1 with slope 2.5 / intercept -1024: rescaled, then inverted.
    expected = raw * 2.5 - 1024
    np.testing.assert_allclose(rescaled, expected.max() + expected.min() - expected)
    # Windowing clips to the window; ml.preprocess.decode maps the result to 8 bits.
    windowed = dicom_pixels(by_instance[4])
    grey, colour = decode(windowed)
    assert grey.dtype == np.uint8 and grey.shape == (64, 64) and colour == 0.0
    eight_bit, _ = decode(dicom_pixels(by_instance[3]))
    assert eight_bit.dtype == np.uint8


def test_worker_classifies_the_dicom_pixels_not_the_file(uploaded, monkeypatch):
    _, scans, _, _ = uploaded
    ModelVersionFactory(is_active=True)
    seen = []

    def fake(model_version, data):
        seen.append(data)
        raise RuntimeError("stop after input check")

    monkeypatch.setattr("inference.runtime.classify_image", fake)
    pipeline.classify_scan(scans[0].pk)
    assert isinstance(seen[0], np.ndarray) and seen[0].shape == (64, 64)


def test_burned_in_annotation_holds_the_scan_until_a_steward_releases_it(
    case, owner_client, steward, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    with django_capture_on_commit_callbacks(execute=True):
        upload(
            owner_client, case, [("x.dcm", dicom_slice(burned_in=True)), ("y.dcm", dicom_slice(instance=2))]
        )
    held, clean = Scan.objects.filter(case=case).order_by("id")
    # Both stored unread, for the worker's text check: its first step holds the YES one.
    assert held.status == clean.status == Scan.Status.CHECKING
    assert enqueued == [held.pk, clean.pk]
    assert pipeline.classify_scan(held.pk) == Scan.Status.HELD
    held.refresh_from_db()
    assert held.status == Scan.Status.HELD
    assert pipeline.classify_scan(held.pk) is None  # the worker cannot claim a held scan
    assert AnonymisationReport.objects.get().files[0]["held"] is True
    enqueued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert held.release(steward) is True
    assert enqueued == [held.pk]
    assert held.release(steward) is False  # released once only


@pytest.mark.parametrize(
    "header,held,read",
    [(True, True, False), (None, False, True), (False, False, False)],
    ids=["says-YES", "says-nothing", "says-NO"],
)
def test_a_slice_is_held_on_yes_read_for_text_unless_it_says_no(
    header, held, read, case, owner_client, monkeypatch, django_capture_on_commit_callbacks
):
    """YES: held unread. Nothing said: may carry text, so its pixels are read (this slice shows
    none, so it is classified). NO: taken at its word."""
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    with django_capture_on_commit_callbacks(execute=True):
        upload(owner_client, case, [("x.dcm", dicom_slice(burned_in=header))])
    scan = Scan.objects.get(case=case)
    assert scan.status == Scan.Status.CHECKING and enqueued == [scan.pk]
    assert AnonymisationReport.objects.get().files[0]["text_check"] == "pending"
    pipeline.classify_scan(scan.pk)  # the worker's first step
    scan.refresh_from_db()
    assert scan.status == (Scan.Status.HELD if held else Scan.Status.DONE)
    entry = AnonymisationReport.objects.get().files[0]
    assert entry["burned_in_annotation"] is (header is not False) and bool(entry.get("held")) is held
    assert isinstance(entry.get("text_check"), dict) is read


@pytest.mark.parametrize(
    "data,message",
    [
        (no_image_dicom(), "holds no image"),
        (dicom_slice()[:-2000], "could not be"),
        (dicom_slice(photometric="RGB"), "greyscale"),
    ],
    ids=["structured-report", "truncated", "colour"],
)
def test_unsupported_dicom_is_refused_with_a_clear_message_and_nothing_stored(
    case, owner_client, data, message, caplog
):
    good = dicom_slice()
    response = owner_client.post(
        reverse("cases:upload", args=[case.pk]),
        {"files": [SimpleUploadedFile("good.dcm", good), SimpleUploadedFile(CLIENT_NAME.format(1), data)]},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert len(errors) == 1 and errors[0]["file"] == 2 and message in errors[0]["message"]
    assert not Scan.objects.exists()
    assert not AnonymisationReport.objects.exists()
    assert leaks(caplog.text) == []


def test_compressed_transfer_syntax_is_refused(case, owner_client):
    dataset = pydicom.dcmread(io.BytesIO(dicom_slice()))
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    dataset.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + bytes(200)])
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=False)
    response = upload(owner_client, case, [("c.dcm", out.getvalue())])
    assert response.status_code == 400
    assert b"not supported" in response.content
    assert not Scan.objects.exists()


def test_api_upload_uses_the_same_deidentification(case, owner, monkeypatch):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    monkeypatch.setattr("inference.tasks.enqueue_classification", lambda scan_id: None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=owner)[0].key}")
    files = [SimpleUploadedFile(CLIENT_NAME.format(n), data) for n, data in corpus().items()]
    response = client.post(f"/api/v1/cases/{case.pk}/scans/", {"files": files}, format="multipart")
    assert response.status_code == 202, response.content
    assert leaks(response.content) == []
    for scan in Scan.objects.filter(case=case):
        with scan.image.open("rb") as stored:
            assert leaks(stored.read()) == []
    refused = client.post(
        f"/api/v1/cases/{case.pk}/scans/", {"files": [SimpleUploadedFile("r.dcm", no_image_dicom())]}
    )
    assert refused.status_code == 400 and "holds no image" in refused.json()["detail"]


def test_api_serves_dicom_scans_as_png_rendered_from_pixels(case, owner, monkeypatch):
    from PIL import Image
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    monkeypatch.setattr("inference.tasks.enqueue_classification", lambda scan_id: None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=owner)[0].key}")
    name, data = next(iter(corpus().items()))
    response = client.post(
        f"/api/v1/cases/{case.pk}/scans/", {"files": [SimpleUploadedFile(name, data)]}, format="multipart"
    )
    assert response.status_code == 202, response.content
    scan_id = response.json()["scans"][0]["id"]
    assert client.get(f"/api/v1/scans/{scan_id}/image/").status_code == 409  # not yet read for text
    assert pipeline.check_text(scan_id) == Scan.Status.QUEUED
    image = client.get(f"/api/v1/scans/{scan_id}/image/")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    png = Image.open(io.BytesIO(image.content))
    assert png.format == "PNG" and png.width > 0
    assert leaks(image.content) == []


def test_dicom_slices_count_against_the_upload_pixel_budget_from_their_headers(
    case, owner_client, settings, monkeypatch
):
    pixels = dicomread.header_pixels(io.BytesIO(dicom_slice()))
    assert pixels > 0
    settings.UPLOAD_MAX_TOTAL_PIXELS = 2 * pixels - 1
    monkeypatch.setattr(dicomread, "read_dicom", lambda *args: pytest.fail("decoded an over-budget upload"))
    response = upload(owner_client, case, [("a.dcm", dicom_slice()), ("b.dcm", dicom_slice())])
    assert response.status_code == 413
    assert f"{2 * pixels:,} pixels together" in response.content.decode()
    assert not Scan.objects.exists()
