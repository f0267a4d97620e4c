"""Reading and checking an uploaded DICOM slice, before anything is stored or de-identified.

Accepted: a greyscale (MONOCHROME1/2) image in an uncompressed transfer syntax, single-frame or a
multi-frame MR/CT object (split into slices by cases/multiframe.py), within the pixel cap, whose
pixel data decodes completely; anything else is a DicomRejected with a reason the uploader can
act on. De-identification is cases/deidentification.py.
"""

import io

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from . import multiframe

# Uncompressed only: decoding JPEG/JPEG 2000/RLE pixel data needs plugins we do not ship.
SUPPORTED_TRANSFER_SYNTAXES = {
    pydicom.uid.ImplicitVRLittleEndian: "Implicit VR Little Endian",
    pydicom.uid.ExplicitVRLittleEndian: "Explicit VR Little Endian",
    pydicom.uid.DeflatedExplicitVRLittleEndian: "Deflated Explicit VR Little Endian",
    pydicom.uid.ExplicitVRBigEndian: "Explicit VR Big Endian",
}
SUPPORTED_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")

# pydicom's validation warnings quote the offending value, which may be a patient's name:
# uploads are checked here, not by pydicom's logger.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


class DicomRejected(ValueError):
    """Not a DICOM object we accept; the message is shown to the uploader as is."""


def header_pixels(fileobj) -> int:
    """Rows x columns x frames from the header alone (the pixel data is not read)."""
    header = pydicom.dcmread(fileobj, stop_before_pixels=True)
    frames = int(header.get("NumberOfFrames", 1) or 1)
    return int(header.get("Rows", 0)) * int(header.get("Columns", 0)) * frames


def read_dicom(data: bytes, max_pixels: int, max_frames: int = 1) -> pydicom.Dataset:
    """Parse and check one uploaded DICOM slice, or a multi-frame MR/CT object of at most
    ``max_frames`` frames (``max_pixels`` counts every frame); raise DicomRejected with a reason."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError) as error:
        raise DicomRejected(f"The DICOM file could not be read ({type(error).__name__}).") from None
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if "PixelData" not in dataset:
        kind = dataset.get("SOPClassUID")
        name = UID(kind).name if kind else "unknown"
        raise DicomRejected(
            f"The DICOM object holds no image (SOP class: {name}); only image slices are accepted."
        )
    if syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        name = UID(syntax).name if syntax else "missing"
        raise DicomRejected(
            f"The DICOM pixel data is encoded as {name}, which is not supported; "
            "export the slice uncompressed (Explicit VR Little Endian)."
        )
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric not in SUPPORTED_PHOTOMETRIC or int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise DicomRejected(
            f"The DICOM image is {photometric or 'of unknown colour type'}; only greyscale "
            "(MONOCHROME1/MONOCHROME2) MRI slices are accepted."
        )
    frames = multiframe.frame_count(dataset)
    if frames > 1 and str(dataset.get("SOPClassUID", "")) not in multiframe.SINGLE_FRAME_CLASS:
        raise DicomRejected(
            f"The DICOM file holds {frames} frames but is not an MR or CT image; upload single slices."
        )
    if frames > max_frames:
        raise DicomRejected(
            f"The DICOM file holds {frames} frames; one upload may hold at most {max_frames} slices "
            "(UPLOAD_MAX_SLICES)."
        )
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    if rows * columns == 0:
        raise DicomRejected("The DICOM image has no rows or columns.")
    if rows * columns * frames > max_pixels:
        size = f"{columns}×{rows}" + (f"×{frames} frames" if frames > 1 else "")
        raise DicomRejected(
            f"The image is {size} = {rows * columns * frames:,} pixels; the limit is {max_pixels:,} pixels."
        )
    try:
        dataset.pixel_array  # noqa: B018 -- decodes completely or fails here, not in the worker
    except (ValueError, AttributeError, TypeError, NotImplementedError, RuntimeError) as error:
        raise DicomRejected(
            "The DICOM pixel data could not be decoded completely "
            f"(truncated or corrupt: {type(error).__name__})."
        ) from None
    return dataset
