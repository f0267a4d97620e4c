"""Zip archives in an upload: opened only within their limits; a bad archive stores nothing and
the answer names the limit."""

import io
import stat
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.models import AuditEvent, Scan, Series
from ml.dicomseries import build_series

from .series_data import as_file, zipped
from .test_upload import stored_files

pytestmark = pytest.mark.django_db

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}


def upload(client, case, data, name="series.zip"):
    return client.post(
        reverse("cases:upload", args=[case.pk]), {"files": [SimpleUploadedFile(name, data)]}, **XHR
    )


@pytest.fixture
def series_files(lgg_slices):
    return {f"series/{i}.dcm": as_file(ds) for i, ds in enumerate(build_series(lgg_slices[:3]))}


def refused(response, status, limit):
    assert response.status_code == status, response.content
    message = response.json()["errors"][0]["message"]
    assert limit in message and "Nothing was stored" in message
    assert not Scan.objects.exists() and not Series.objects.exists()


def test_a_zip_of_a_series_is_stored_as_its_slices(owner_client, case, series_files):
    before = stored_files()
    assert upload(owner_client, case, zipped(series_files)).status_code == 201
    assert Series.objects.get(case=case).slices().count() == 3
    assert len(stored_files() - before) == 3


def test_too_many_members(owner_client, case, series_files, settings):
    settings.UPLOAD_ZIP_MAX_MEMBERS = 2
    before = stored_files()
    refused(upload(owner_client, case, zipped(series_files)), 413, "UPLOAD_ZIP_MAX_MEMBERS")
    assert stored_files() == before
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.UPLOAD_REJECTED).exists()


def test_too_many_bytes_unpacked(owner_client, case, series_files, settings):
    settings.UPLOAD_ZIP_MAX_BYTES = sum(len(data) for data in series_files.values()) - 1
    refused(upload(owner_client, case, zipped(series_files)), 413, "UPLOAD_ZIP_MAX_BYTES")


def test_a_zip_bomb_member(owner_client, case, series_files):
    members = series_files | {"series/padding.dcm": b"\0" * 5_000_000}
    refused(upload(owner_client, case, zipped(members)), 413, "UPLOAD_ZIP_MAX_RATIO")


@pytest.mark.parametrize("name", ["../escape.dcm", "/etc/slice.dcm", "series/../../x.dcm", "C:/slice.dcm"])
def test_absolute_or_parent_paths(owner_client, case, series_files, name):
    data = next(iter(series_files.values()))
    refused(upload(owner_client, case, zipped(series_files | {name: data})), 400, "path")


def test_a_symbolic_link(owner_client, case, series_files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in series_files.items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("series/link.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    refused(upload(owner_client, case, out.getvalue()), 400, "symbolic link")


@pytest.mark.parametrize("name", ["inner.zip", "inner.bin"])
def test_a_nested_archive(owner_client, case, series_files, name):
    inner = zipped(series_files)
    refused(upload(owner_client, case, zipped(series_files | {name: inner})), 400, "nested archives")


def test_a_corrupt_archive(owner_client, case, series_files):
    data = zipped(series_files)
    refused(upload(owner_client, case, data[: len(data) // 2]), 400, "zip archive")


def test_a_bad_member_stores_nothing_and_names_it(owner_client, case, series_files):
    response = upload(owner_client, case, zipped(series_files | {"series/notes.txt": b"not an image"}))
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert "notes.txt" in error["name"] and "not a supported image" in error["message"]
    assert not Scan.objects.exists() and not Series.objects.exists()


def test_the_api_answers_a_refused_archive_with_its_code(client_for, owner, case, series_files, settings):
    settings.UPLOAD_ZIP_MAX_MEMBERS = 1
    response = client_for(owner).post(
        f"/api/v1/cases/{case.pk}/scans/", {"files": [SimpleUploadedFile("s.zip", zipped(series_files))]}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "archive_too_many_members"
    assert "UPLOAD_ZIP_MAX_MEMBERS" in response.json()["detail"]
