"""What the receiving tests share: the PACS settings for a disposable Orthanc, everything
BrainScan stored (files and rows) as text to search for identifiers, and a STOW-RS body."""

import io
import uuid
from pathlib import Path

import pydicom
from django.core import serializers

from cases.models import (
    AnonymisationReport,
    AuditEvent,
    Case,
    Scan,
    Series,
    Study,
    StudyImport,
)


def point_at(settings_fixture, orthanc):
    settings_fixture.PACS_URL = orthanc.dicomweb_url
    settings_fixture.PACS_USER, settings_fixture.PACS_PASSWORD = orthanc.user, orthanc.password
    settings_fixture.PACS_TOKEN, settings_fixture.PACS_TIMEOUT = None, 5


def stored_files() -> list[Path]:
    root = Path(Scan._meta.get_field("image").storage.location)
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def files_since(before: list[Path]) -> list[Path]:
    """Files stored since ``before`` (stored_files() then): the media folder outlives each test."""
    return sorted(set(stored_files()) - set(before))


def rows_as_text() -> str:
    """Every row the receiving path writes, serialised: what a database dump would show."""
    models = (Case, Study, Series, Scan, AnonymisationReport, StudyImport, AuditEvent)
    return "\n".join(serializers.serialize("json", model.objects.all()) for model in models)


def stored_datasets(case) -> list[pydicom.Dataset]:
    datasets = []
    for scan in case.scans.order_by("series_instance"):
        with scan.image.open("rb") as stored:
            datasets.append(pydicom.dcmread(io.BytesIO(stored.read())))
    return datasets


def source_uids(series) -> set[str]:
    uids = set()
    for ds in series:
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            uids.add(str(ds.get(keyword)))
    return uids


def stow_body(parts: list[bytes], *, part_type="application/dicom") -> tuple[bytes, str]:
    """A multipart/related body of ``parts`` and its Content-Type."""
    boundary = uuid.uuid4().hex
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def part10(ds) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
