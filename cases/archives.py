"""Zip archives of a series or study in an upload: opened only within bounds, their members then
checked one by one as uploaded files are (cases/uploads.py).

An archive is refused as a whole (UploadRefused, nothing stored) when it holds more members than
UPLOAD_ZIP_MAX_MEMBERS, more than UPLOAD_ZIP_MAX_BYTES uncompressed, a member compressed more than
UPLOAD_ZIP_MAX_RATIO times, an absolute or ``..`` path, a symbolic link, an encrypted member or
another archive. Directories and DICOMDIR index files are skipped: they are not images.
"""

import stat
import zipfile
from pathlib import PurePosixPath, PureWindowsPath

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from ml.preprocess import is_dicom

from .refusals import UploadRefused

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# Archives and compressed files a member may not be: nested archives are not opened.
ARCHIVE_MAGIC = (*ZIP_MAGIC, b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!")
ARCHIVE_SUFFIXES = (".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar")


def is_zip(head: bytes) -> bool:
    # A DICOM file's preamble may start like a zip (a "dual-personality" file): DICOM wins.
    return head.startswith(ZIP_MAGIC) and not is_dicom(head)


def _refuse(message, code, status=413):
    raise UploadRefused(f"{message} Nothing was stored.", status=status, code=code)


def _check_member(info: zipfile.ZipInfo, label: str):
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive or ".." in parts:
        _refuse(
            f"{label} holds a member with an absolute or '..' path; such archives are not opened.",
            "archive_unsafe_path",
            400,
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        _refuse(f"{label} holds a symbolic link; such archives are not opened.", "archive_symlink", 400)
    if info.flag_bits & 0x1:
        _refuse(f"{label} holds an encrypted member; upload it unencrypted.", "archive_encrypted", 400)
    if name.lower().endswith(ARCHIVE_SUFFIXES):
        _refuse(
            f"{label} holds another archive; nested archives are not opened: unpack it first.",
            "archive_nested",
            400,
        )
    ratio = settings.UPLOAD_ZIP_MAX_RATIO
    if info.file_size > ratio * max(info.compress_size, 1):
        _refuse(
            f"{label} holds a member compressed more than {ratio} times (UPLOAD_ZIP_MAX_RATIO): "
            "a likely zip bomb.",
            "archive_ratio",
        )


def _members(uploaded, label: str, budget: dict) -> list[SimpleUploadedFile]:
    try:
        archive = zipfile.ZipFile(uploaded)
        infos = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        _refuse(f"{label} is not a readable zip archive.", "archive_corrupt", 400)
    members = []
    for info in infos:
        _check_member(info, label)
        if PurePosixPath(info.filename.replace("\\", "/")).name.upper() == "DICOMDIR":
            continue
        budget["members"] += 1
        budget["bytes"] += info.file_size
        if budget["members"] > settings.UPLOAD_ZIP_MAX_MEMBERS:
            _refuse(
                f"The archives of this upload hold more than {settings.UPLOAD_ZIP_MAX_MEMBERS} files "
                "(UPLOAD_ZIP_MAX_MEMBERS): send the series in smaller archives.",
                "archive_too_many_members",
            )
        if budget["bytes"] > settings.UPLOAD_ZIP_MAX_BYTES:
            _refuse(
                f"The archives of this upload hold more than {settings.UPLOAD_ZIP_MAX_BYTES:,} bytes "
                "uncompressed (UPLOAD_ZIP_MAX_BYTES): send the series in smaller archives.",
                "archive_too_large",
            )
        try:
            # Read no more than the member declares: a lying header cannot make us inflate more.
            with archive.open(info) as member:
                data = member.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError):
            _refuse(
                f"{label}: a member could not be unpacked (corrupt or an unsupported method).",
                "archive_corrupt",
                400,
            )
        if len(data) != info.file_size:
            _refuse(
                f"{label}: a member's size differs from what the archive declares.", "archive_corrupt", 400
            )
        if data.startswith(ARCHIVE_MAGIC) and not is_dicom(data[:132]):
            _refuse(
                f"{label} holds another archive; nested archives are not opened: unpack it first.",
                "archive_nested",
                400,
            )
        members.append(SimpleUploadedFile(f"{uploaded.name or 'archive'}: {info.filename}", data))
    return members


def expand(files) -> list:
    """The upload's files with every zip archive replaced by its members, in archive order.

    Raises UploadRefused (413 for a limit, 400 for an archive we do not open) before any member
    is decoded; the limits apply to all archives of the upload together.
    """
    expanded, budget = [], {"members": 0, "bytes": 0}
    for index, uploaded in enumerate(files, start=1):
        uploaded.seek(0)
        head = uploaded.read(132)
        uploaded.seek(0)
        if not is_zip(head):
            expanded.append(uploaded)
            continue
        label = f"Archive {index}"
        if (uploaded.size or 0) > settings.UPLOAD_ZIP_MAX_BYTES:
            _refuse(
                f"{label} is larger than {settings.UPLOAD_ZIP_MAX_BYTES:,} bytes (UPLOAD_ZIP_MAX_BYTES).",
                "archive_too_large",
            )
        expanded.extend(_members(uploaded, label, budget))
    return expanded
