"""Upload validation and de-identification of scan images, and storing an upload as scans.

Every file is identified by its content (never its name or declared type), size- and
pixel-capped, decoded completely, then de-identified: JPEG/PNG are re-encoded from their
pixels alone as PNG (cases/raster.py), so no metadata (EXIF, GPS, ICC, XMP, text chunks) survives; DICOM
slices are checked (cases/dicomread.py) and de-identified per the PS3.15 basic profile
(cases/deidentification.py). The client's file name is never kept, nor logged. Scans are
stored as CHECKING: the worker reads them for burned-in text first (cases.burnedin), as reading a
whole series takes longer than a request may. Formats
register a sniffer, a header reader and a cleaner in FORMATS. One upload's work is bounded:
its files' headers are summed against a pixel budget before anything is decoded, and checking
stops with a 503 once it runs past its time budget.
"""

import hashlib
import io
import logging
from dataclasses import dataclass, field
from time import monotonic

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from ml.preprocess import is_dicom

from . import acquisition, archives, deidentification, dicomread, multiframe, studies
from .models import AnonymisationReport, AuditEvent, CaseClosed, Scan
from .raster import decode_raster, header_pixels, metadata_found, pixels_only
from .refusals import UploadRefused, UploadRejected
from .signals import announce_ready

logger = logging.getLogger(__name__)
# Pillow logs every EXIF tag's value at DEBUG while reading it (an Artist, a GPS position):
# uploads must never put those in a log, whatever LOG_LEVEL says.
logging.getLogger("PIL").setLevel(max(logging.getLogger("PIL").level, logging.INFO))


@dataclass(frozen=True)
class CleanImage:
    content: bytes  # de-identified PNG, or DICOM before its UIDs are remapped (store_scans)
    sha256: str
    width: int
    height: int
    modality: str
    # What de-identification removed: attribute/metadata names and counts, never values.
    report: dict = field(default_factory=dict)
    # The de-identified DICOM dataset; its UIDs are remapped per case when stored.
    dicom: object = None


@dataclass(frozen=True)
class FileError:
    index: int
    name: str
    message: str


def _megabytes(size):
    return f"{size / (1024 * 1024):.1f} MB"


def _clean_raster(data: bytes, pillow_format: str, label: str) -> CleanImage:
    decoded = decode_raster(data, pillow_format, label)
    removed = metadata_found(decoded)
    image = pixels_only(decoded)
    out = io.BytesIO()
    image.save(out, format="PNG")
    content = out.getvalue()
    return CleanImage(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        width=image.width,
        height=image.height,
        modality=Scan.Modality.IMAGE,
        report={"format": label, "method": "re-encoded from pixels as PNG", "removed": removed},
    )


def _clean_dicom(data: bytes) -> CleanImage:
    try:
        dataset = dicomread.read_dicom(data, settings.UPLOAD_MAX_PIXELS, settings.UPLOAD_MAX_SLICES)
    except dicomread.DicomRejected as rejection:
        raise UploadRejected(str(rejection)) from None
    # Remove identifiers now: nothing identifying outlives validation; UIDs follow per case.
    report = deidentification.deidentify(dataset, uid_key=b"")
    return CleanImage(
        content=b"",
        sha256="",
        width=int(dataset.Columns),
        height=int(dataset.Rows),
        modality=Scan.Modality.DICOM,
        report=report.as_dict(),
        dicom=dataset,
    )


@dataclass(frozen=True)
class Format:
    label: str
    accepts: callable  # first bytes -> bool
    header_pixels: callable  # uploaded file -> pixels its header declares, nothing decoded
    clean: callable  # full bytes -> CleanImage (raises UploadRejected)


FORMATS = [
    Format(
        "JPEG",
        lambda head: head.startswith(b"\xff\xd8\xff"),
        lambda file: header_pixels(file, "JPEG"),
        lambda data: _clean_raster(data, "JPEG", "JPEG"),
    ),
    Format(
        "PNG",
        lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
        lambda file: header_pixels(file, "PNG"),
        lambda data: _clean_raster(data, "PNG", "PNG"),
    ),
    Format("DICOM", is_dicom, dicomread.header_pixels, _clean_dicom),
]


def accepted_formats() -> str:
    return ", ".join(fmt.label for fmt in FORMATS)


def clean_upload(uploaded_file) -> CleanImage:
    """Validate one uploaded file and return its de-identified form, or raise UploadRejected."""
    cap = settings.UPLOAD_MAX_BYTES
    size = uploaded_file.size or 0
    if size == 0:
        raise UploadRejected("The file is empty.")
    if size > cap:
        raise UploadRejected(f"The file is {_megabytes(size)}; the limit is {_megabytes(cap)}.")
    uploaded_file.seek(0)
    data = uploaded_file.read(cap + 1)
    if len(data) > cap:
        raise UploadRejected(f"The file is larger than the limit of {_megabytes(cap)}.")
    for fmt in FORMATS:
        if fmt.accepts(data[:132]):
            return fmt.clean(data)
    raise UploadRejected(
        f"The content is not a supported image ({accepted_formats()}), whatever its name says."
    )


def clean_slices(uploaded_file) -> list[CleanImage]:
    """One file as the slices it holds, each validated and de-identified (a frame of a multi-frame
    object is a slice, stored and read for burnt-in text by the worker as one); raises
    UploadRejected. Uploads and objects from the PACS (cases.pacs_import) both go through it."""
    return list(multiframe.frames(clean_upload(uploaded_file)))


def _declared_pixels(uploaded_file) -> int:
    """The pixels a file's header declares, read without decoding it; 0 for a file that its own
    checks refuse without decoding (empty, too large, not an image, unreadable header)."""
    if not 0 < (uploaded_file.size or 0) <= settings.UPLOAD_MAX_BYTES:
        return 0
    uploaded_file.seek(0)
    head = uploaded_file.read(132)
    for fmt in FORMATS:
        if fmt.accepts(head):
            try:
                uploaded_file.seek(0)
                pixels = fmt.header_pixels(uploaded_file)
            except Exception:  # a header it cannot read: clean_upload says what is wrong
                return 0
            finally:
                uploaded_file.seek(0)
            return pixels if pixels <= settings.UPLOAD_MAX_PIXELS else 0
    return 0


def check_pixel_budget(files):
    """Refuse an upload whose files together declare more pixels than one request may decode."""
    budget = settings.UPLOAD_MAX_TOTAL_PIXELS
    total = sum(_declared_pixels(uploaded) for uploaded in files)
    if total > budget:
        raise UploadRefused(
            f"The {len(files)} images of this upload hold {total:,} pixels together; one upload may "
            f"hold at most {budget:,} pixels. Nothing was stored: send them in smaller batches.",
            status=413,
            code="upload_too_large",
        )


def validate_files(files) -> tuple[list[CleanImage], list[FileError]]:
    """Check every file of one upload: (cleaned images, one error per bad file).

    Raises UploadRefused, before anything is decoded, when the files' headers declare more than
    UPLOAD_MAX_TOTAL_PIXELS together, and when checking runs past UPLOAD_MAX_SECONDS.
    """
    cleaned, errors = [], []
    if not files:
        errors.append(FileError(0, "", "Choose at least one image to upload."))
    if len(files) > settings.UPLOAD_MAX_FILES:
        errors.append(FileError(0, "", f"At most {settings.UPLOAD_MAX_FILES} files can be uploaded at once."))
        return [], errors
    files = archives.expand(files)  # zip members become files; a bad archive refuses it all
    check_pixel_budget(files)
    deadline = monotonic() + settings.UPLOAD_MAX_SECONDS
    for index, uploaded in enumerate(files, start=1):
        if monotonic() > deadline:
            # A busy server: answer now, in the caller's format, rather than at a proxy's timeout.
            raise UploadRefused(
                f"The server is too busy to check this upload now (it took longer than "
                f"{settings.UPLOAD_MAX_SECONDS} s). Nothing was stored: try again in a minute, "
                "or send fewer images at once.",
                status=503,
                code="upload_timeout",
                retry_after=60,
            )
        try:
            cleaned.extend(clean_slices(uploaded))
        except UploadRejected as rejection:
            errors.append(FileError(index, uploaded.name or f"file {index}", str(rejection)))
        if len(cleaned) > settings.UPLOAD_MAX_SLICES:
            raise UploadRefused(
                f"This upload holds more than {settings.UPLOAD_MAX_SLICES} slices (UPLOAD_MAX_SLICES). "
                "Nothing was stored: send the series in smaller batches.",
                status=413,
                code="upload_too_many_slices",
            )
    return cleaned, errors


def _finish(case, image: CleanImage) -> tuple[bytes, str]:
    """The bytes to store and their SHA-256; DICOM UIDs are remapped consistently for the case."""
    if image.dicom is None:
        return image.content, image.sha256
    deidentification.remap_uids(image.dicom, deidentification.case_uid_key(case))
    content = deidentification.to_bytes(image.dicom)
    return content, hashlib.sha256(content).hexdigest()


def _has_study(image: CleanImage) -> bool:
    return image.dicom is not None and bool(image.dicom.get("StudyInstanceUID"))


def store_scans(case, user, images: list[CleanImage]) -> list[Scan]:
    """Create the scans and their anonymisation report in one transaction; enqueue once committed.

    Every scan is stored as CHECKING: no one but a steward sees its pixels until the worker has
    read it for burned-in text (cases.burnedin), holding it for a steward or passing it on to
    classification. Raises CaseClosed, storing
    nothing, if the case is closed (by now: a teammate may have closed it during the checks).
    A failure after the commit (the broker is down, the request times out while publishing)
    leaves the scans and their files as committed: a scan that was not published stays queued,
    and the sweep publishes it.
    """
    stored_names, scans = [], []
    committed = False

    def mark_committed():
        nonlocal committed
        committed = True

    try:
        with transaction.atomic():
            case.lock().check_open("upload scans")
            report = AnonymisationReport.objects.create(case=case, uploaded_by=user)
            for image in images:
                # Read before _finish remaps the UIDs for the case: how a later pull finds it.
                joined = studies.join_key(str(image.dicom.StudyInstanceUID)) if _has_study(image) else ""
                content, sha256 = _finish(case, image)
                scan = Scan(
                    case=case,
                    sha256=sha256,
                    modality=image.modality,
                    width=image.width,
                    height=image.height,
                    acquisition=acquisition.describe(image.dicom) if image.dicom is not None else {},
                    **studies.place(case, image.dicom, joined),  # its study and series, by the remapped UIDs
                    uploaded_by=user,
                    anonymisation_report=report,
                    status=Scan.Status.CHECKING,
                )
                name = "scan.dcm" if image.modality == Scan.Modality.DICOM else "scan.png"
                scan.image.save(name, ContentFile(content), save=False)
                stored_names.append(scan.image.name)
                scan.save()
                scans.append(scan)
                # "held" and "text_check" follow from the worker's check (cases.burnedin.settle).
                report.files.append({"scan": scan.pk, **image.report, "text_check": "pending"})
            report.save(update_fields=["files"])
            AuditEvent.record(user, AuditEvent.Verb.UPLOAD, case, scans=[s.pk for s in scans])
            # Commit hooks run in order: the mark is set before anything is published.
            transaction.on_commit(mark_committed)
            announce_ready(Scan, [scan.pk for scan in scans])
    except BaseException:
        if not committed:
            # The rows are rolled back; the files are not part of the transaction, so remove them.
            storage = Scan._meta.get_field("image").storage
            for name in stored_names:
                storage.delete(name)
        raise
    # Ids and counts only: never a file name or a header value.
    logger.info("Stored %d scan(s) for case %s, to be checked for burned-in text", len(scans), case.pk)
    return scans


def upload_scans(case, user, files) -> tuple[list[Scan], list[FileError]]:
    """Check, de-identify and store one upload, the one path of the page and the API: (the scans
    stored, no errors), or (no scans, one error per bad file). Raises CaseClosed or UploadRefused
    (the upload as a whole). A rejection stores nothing and is audited (UPLOAD_REJECTED)."""
    try:
        case.check_open("upload scans")  # before decoding anything
        images, errors = validate_files(files)
        if not errors:
            return store_scans(case, user, images), []
    except (CaseClosed, UploadRefused) as refusal:
        AuditEvent.record(user, AuditEvent.Verb.UPLOAD_REJECTED, case, reason=refusal.code)
        raise
    AuditEvent.record(user, AuditEvent.Verb.UPLOAD_REJECTED, case, files=len(errors))
    return [], errors
