"""Upload validation: a corpus of bad files is refused with a clear message and leaves nothing behind."""

import io
import struct
import zlib
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from cases.models import AuditEvent, Scan
from tests.conftest import real_mri_images

pytestmark = pytest.mark.django_db

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}


def jpeg_bytes(size=(128, 128), **save_options):
    image = Image.effect_noise(size, 60)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **save_options)
    return buffer.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width, height):
    """A tiny PNG whose header declares width x height greyscale pixels (a decompression bomb)."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    body = png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
    return b"\x89PNG\r\n\x1a\n" + header + body + png_chunk(b"IEND", b"")


def png_chunk_types(data):
    """The chunk types of a PNG file, in file order."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    types, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        types.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return types


def upload(client, case, *files, xhr=True):
    return client.post(
        reverse("cases:upload", args=[case.pk]), {"files": list(files)}, **(XHR if xhr else {})
    )


def stored_files():
    root = Path(default_storage.location)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def enqueued(monkeypatch):
    ids = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", ids.append)
    return ids


BAD_FILES = {
    "truncated JPEG": (
        lambda: SimpleUploadedFile("scan.jpg", jpeg_bytes()[:3000], "image/jpeg"),
        "could not be decoded completely",
    ),
    "PNG bomb (declared size)": (
        lambda: SimpleUploadedFile("scan.png", png_declaring(100_000, 100_000), "image/png"),
        "pixels",
    ),
    "text renamed .jpg": (
        lambda: SimpleUploadedFile("scan.jpg", b"Patient notes, not an image\n" * 20, "image/jpeg"),
        "not a supported image",
    ),
    "empty": (lambda: SimpleUploadedFile("scan.png", b"", "image/png"), "The file is empty"),
    "PDF named .png": (
        lambda: SimpleUploadedFile("scan.png", b"%PDF-1.4\n" + b"0" * 500, "image/png"),
        "not a supported image",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_is_refused_with_its_message_and_nothing_stored(owner_client, case, enqueued, kind):
    make, expected = BAD_FILES[kind]
    before = stored_files()
    response = upload(owner_client, case, make())
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert len(errors) == 1 and errors[0]["file"] == 1
    assert expected in errors[0]["message"]
    assert not Scan.objects.exists()
    assert stored_files() == before
    assert enqueued == []


def test_large_real_png_over_pixel_cap_is_refused(owner_client, case, settings):
    settings.UPLOAD_MAX_PIXELS = 4_000_000
    buffer = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buffer, format="PNG")  # 9 MP of zeros: ~10 KB compressed
    response = upload(owner_client, case, SimpleUploadedFile("big.png", buffer.getvalue()))
    assert response.status_code == 400
    assert "3000×3000 = 9,000,000 pixels; the limit is 4,000,000" in response.json()["errors"][0]["message"]


def test_oversized_file_is_refused(owner_client, case, settings):
    settings.UPLOAD_MAX_BYTES = 2048
    data = jpeg_bytes((256, 256))
    assert len(data) > 2048
    response = upload(owner_client, case, SimpleUploadedFile("scan.jpg", data))
    assert response.status_code == 400
    assert "the limit is 0.0 MB" in response.json()["errors"][0]["message"]
    assert not Scan.objects.exists()


def test_one_bad_file_rejects_the_whole_upload_with_a_message_per_bad_file(owner_client, case, enqueued):
    before = stored_files()
    good = SimpleUploadedFile("good.jpg", jpeg_bytes())
    empty = SimpleUploadedFile("empty.jpg", b"")
    text = SimpleUploadedFile("notes.jpg", b"hello" * 100)
    response = upload(owner_client, case, good, empty, text)
    assert response.status_code == 400
    assert [e["file"] for e in response.json()["errors"]] == [2, 3]
    assert not Scan.objects.exists() and stored_files() == before and enqueued == []
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.UPLOAD_REJECTED).count() == 1


def test_form_post_without_javascript_shows_errors_on_the_page(owner_client, case):
    response = upload(owner_client, case, SimpleUploadedFile("x.jpg", b""), xhr=False)
    assert response.status_code == 400
    assert "The file is empty." in response.content.decode()


def test_no_file_is_a_clear_400(owner_client, case):
    response = upload(owner_client, case)
    assert response.status_code == 400
    assert "Choose at least one image" in response.json()["errors"][0]["message"]


def test_exif_name_and_gps_are_stripped(owner_client, case, enqueued):
    exif = Image.Exif()
    exif[0x013B] = "Jane Doe"  # Artist
    exif[0x010E] = "Patient Jane Doe, born 1970-01-01"  # ImageDescription
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)})
    data = jpeg_bytes(exif=exif.tobytes())
    assert b"Jane Doe" in data and Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)

    response = upload(owner_client, case, SimpleUploadedFile("Jane_Doe_MRN12345.jpg", data))

    assert response.status_code == 201
    scan = Scan.objects.get()
    stored = scan.image.read()
    assert b"Jane Doe" not in stored
    # Pixels only: no eXIf, text or profile chunk. (Not a b"Exif" search over the whole file: the
    # stored pixels are random noise, and their compressed bytes hold any given 4 bytes now and then.)
    assert set(png_chunk_types(stored)) == {b"IHDR", b"IDAT", b"IEND"}
    image = Image.open(io.BytesIO(stored))
    assert image.format == "PNG"
    assert not image.getexif() and "exif" not in image.info and "icc_profile" not in image.info
    assert "Jane" not in scan.image.name and "MRN" not in scan.image.name


def test_png_text_chunks_and_icc_profile_are_stripped(owner_client, case, enqueued):
    from PIL import ImageCms, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", "Jane Doe")
    info.add_itxt("Comment", "MRN 12345", zip=True)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "gray").save(buffer, format="PNG", pnginfo=info, icc_profile=icc)

    response = upload(owner_client, case, SimpleUploadedFile("x.png", buffer.getvalue()))

    assert response.status_code == 201
    stored = Scan.objects.get().image.read()
    assert b"Jane Doe" not in stored and b"tEXt" not in stored and b"iCCP" not in stored
    assert Image.open(io.BytesIO(stored)).info == {}


def test_several_files_become_scans_enqueued_on_commit(
    owner_client, case, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload(
            owner_client,
            case,
            SimpleUploadedFile("a.jpg", jpeg_bytes()),
            SimpleUploadedFile("b.png", png_declaring(8, 8)),
        )
    assert response.status_code == 201, response.content
    scans = list(Scan.objects.order_by("pk"))
    assert [s["id"] for s in response.json()["scans"]] == [s.pk for s in scans]
    assert len(callbacks) == 2 and enqueued == [s.pk for s in scans]
    assert all(s.status == Scan.Status.CHECKING and s.image.name.endswith(".png") for s in scans)
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.UPLOAD).detail == {"scans": [s.pk for s in scans]}


def test_real_mri_jpeg_is_accepted_and_pixels_kept(owner_client, case, enqueued):
    path = real_mri_images(1)[0]
    response = upload(owner_client, case, SimpleUploadedFile(path.name, path.read_bytes()))
    assert response.status_code == 201
    scan = Scan.objects.get()
    original = Image.open(path)
    stored = Image.open(scan.image)
    assert stored.size == original.size == (scan.width, scan.height)
    assert stored.convert("L").tobytes() == original.convert("L").tobytes()


def test_too_many_files_at_once_is_refused(owner_client, case, settings):
    settings.UPLOAD_MAX_FILES = 2
    files = [SimpleUploadedFile(f"{i}.jpg", jpeg_bytes((16, 16))) for i in range(3)]
    response = upload(owner_client, case, *files)
    assert response.status_code == 400
    assert "At most 2 files" in response.json()["errors"][0]["message"]
    assert not Scan.objects.exists()


def test_upload_over_the_pixel_budget_is_a_413_read_from_headers_before_decoding(
    owner_client, case, enqueued, settings, monkeypatch
):
    settings.UPLOAD_MAX_TOTAL_PIXELS = 40_000
    decoded = []
    monkeypatch.setattr("cases.uploads.decode_raster", lambda *args: decoded.append(args))
    before = stored_files()
    files = [SimpleUploadedFile(f"{i}.jpg", jpeg_bytes((128, 128))) for i in range(3)]
    response = upload(owner_client, case, *files)
    assert response.status_code == 413
    [error] = response.json()["errors"]
    assert error["file"] == 0
    assert "49,152 pixels together" in error["message"] and "at most 40,000 pixels" in error["message"]
    assert decoded == [], "an over-budget upload must cost no decoding"
    assert not Scan.objects.exists() and stored_files() == before and enqueued == []
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.UPLOAD_REJECTED).count() == 1


def test_upload_within_the_pixel_budget_is_stored(owner_client, case, enqueued, settings):
    settings.UPLOAD_MAX_TOTAL_PIXELS = 3 * 128 * 128
    files = [SimpleUploadedFile(f"{i}.jpg", jpeg_bytes((128, 128))) for i in range(3)]
    response = upload(owner_client, case, *files)
    assert response.status_code == 201, response.content
    assert Scan.objects.count() == 3


def test_files_refused_on_their_own_do_not_count_against_the_pixel_budget(owner_client, case, settings):
    """A bomb's declared size is its own error (per file), not an over-budget upload."""
    settings.UPLOAD_MAX_TOTAL_PIXELS = 20_000
    bomb = SimpleUploadedFile("bomb.png", png_declaring(100_000, 100_000))
    response = upload(owner_client, case, SimpleUploadedFile("ok.jpg", jpeg_bytes()), bomb)
    assert response.status_code == 400
    assert [e["file"] for e in response.json()["errors"]] == [2]


def test_form_upload_over_the_pixel_budget_shows_the_message_on_the_page(owner_client, case, settings):
    settings.UPLOAD_MAX_TOTAL_PIXELS = 1000
    response = upload(owner_client, case, SimpleUploadedFile("a.jpg", jpeg_bytes()), xhr=False)
    assert response.status_code == 413
    assert "one upload may hold at most 1,000 pixels" in response.content.decode()


def test_upload_still_being_checked_after_its_time_budget_is_a_503_storing_nothing(
    owner_client, case, enqueued, settings, monkeypatch
):
    """Each file takes 3 s on a busy server: the third would start after the 5 s budget."""
    from cases import uploads

    settings.UPLOAD_MAX_SECONDS = 5
    clock = [1000.0]
    clean = uploads.clean_upload

    def slow_clean(uploaded, **options):
        clock[0] += 3
        return clean(uploaded, **options)

    monkeypatch.setattr(uploads, "monotonic", lambda: clock[0])
    monkeypatch.setattr(uploads, "clean_upload", slow_clean)
    before = stored_files()
    files = [SimpleUploadedFile(f"{i}.jpg", jpeg_bytes((16, 16))) for i in range(3)]
    response = upload(owner_client, case, *files)
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert "took longer than 5 s" in response.json()["errors"][0]["message"]
    assert not Scan.objects.exists() and stored_files() == before and enqueued == []
