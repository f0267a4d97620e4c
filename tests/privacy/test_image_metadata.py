"""JPEG/PNG uploads: no metadata survives (EXIF incl. GPS, XMP, ICC, comments, PNG text), proven
by reading the stored files back; the anonymisation report names what was dropped."""

import io
import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image, ImageCms, PngImagePlugin

from cases.models import AnonymisationReport, Scan

pytestmark = pytest.mark.django_db

NAME = "Henrietta Kowalczyk"


def jpeg_with_everything() -> bytes:
    exif = Image.Exif()
    exif[0x013B] = NAME  # Artist
    exif[0x010E] = f"{NAME} MRN8830417"  # ImageDescription
    exif.get_ifd(0x8825).update({1: "N", 2: (54.0, 12.0, 3.5), 3: "W", 4: (8.0, 28.0, 11.0)})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>{NAME}</dc:creator></x:xmpmeta>'.encode()
    out = io.BytesIO()
    Image.new("RGB", (48, 48), "gray").save(
        out, format="JPEG", exif=exif.tobytes(), icc_profile=icc, xmp=xmp, comment=f"{NAME} MRN8830417"
    )
    return out.getvalue()


def png_with_everything() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", NAME)
    info.add_itxt("Description", "MRN8830417", zip=True)
    info.add_text("XML:com.adobe.xmp", f"<x:xmpmeta>{NAME}</x:xmpmeta>")
    exif = Image.Exif()
    exif[0x013B] = NAME
    out = io.BytesIO()
    Image.new("L", (48, 48), 90).save(out, format="PNG", pnginfo=info, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize("make", [jpeg_with_everything, png_with_everything], ids=["jpeg", "png"])
def test_stored_file_has_no_metadata_and_report_says_what_went(owner_client, case, make, caplog, monkeypatch):
    monkeypatch.setattr("inference.tasks.enqueue_classification", lambda scan_id: None)
    data = make()
    caplog.set_level(logging.DEBUG)  # after making the file: Pillow logs what it writes
    assert NAME.encode() in data  # the test file really carries the name

    response = owner_client.post(
        reverse("cases:upload", args=[case.pk]),
        {"files": [SimpleUploadedFile("Kowalczyk_MRN8830417.img", data)]},
    )

    assert response.status_code == 302
    scan = Scan.objects.get()
    with scan.image.open("rb") as stored:
        content = stored.read()
    for needle in (
        b"Kowalczyk",
        b"8830417",
        b"Exif",
        b"xmpmeta",
        b"tEXt",
        b"iTXt",
        b"zTXt",
        b"iCCP",
        b"eXIf",
    ):
        assert needle not in content
    image = Image.open(io.BytesIO(content))
    assert image.format == "PNG" and image.info == {} and not image.getexif()
    report = AnonymisationReport.objects.get().files[0]
    assert report["scan"] == scan.pk and "EXIF" in report["removed"]
    if make is jpeg_with_everything:
        assert {"EXIF GPS", "ICC profile", "XMP", "comment"} <= set(report["removed"])
    else:
        assert {"XMP", "text chunk"} <= set(report["removed"])
    assert "Kowalczyk" not in repr(report) and "Kowalczyk" not in caplog.text
