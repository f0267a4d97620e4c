"""A real MRI slice (from ../shared) as DICOM Part 10 bytes, with acquisition attributes, a window
and identifying values, for the tests of what an upload keeps and what the viewer shows; and the
pixel module and Part 10 writing that every hand-built test DICOM shares."""

import io

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

ACQUISITION = {
    "Modality": "MR",
    "BodyPartExamined": "HEAD",
    "MRAcquisitionType": "2D",
    "ScanningSequence": "SE",
    "SequenceVariant": "SK",
    "SequenceName": "*tse2d1_15",
    "RepetitionTime": "5000",
    "EchoTime": "93.5",
    "MagneticFieldStrength": "1.5",
    "SliceThickness": "5",
    "PixelSpacing": ["0.45", "0.45"],
    "ImageOrientationPatient": ["1", "0", "0", "0", "1", "0"],
}
# Values the profile removes or blanks: never stored, never shown.
IDENTIFYING = {
    "PatientName": "Quarrington^Elspeth",
    "PatientID": "MRN4417209",
    "SeriesDescription": "Ax T2 Quarrington",
    "ProtocolName": "Quarrington follow-up",
    "InstitutionName": "Saint Ormond Clinic",
    "StationName": "ORMOND-MR2",
    "StudyDate": "20240301",
}
# Stored pixels are the JPEG's grey values times SCALE plus OFFSET (a 12-bit-like range).
SCALE, OFFSET = 10, 100


def mri_dicom(image_path, *, window=(1100, 1800), photometric="MONOCHROME2", **extra) -> bytes:
    grey = np.asarray(Image.open(image_path).convert("L"), dtype=np.uint16)
    pixels = grey * SCALE + OFFSET
    ds = Dataset()
    for keyword, value in (ACQUISITION | IDENTIFYING | extra).items():
        setattr(ds, keyword, value)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.BurnedInAnnotation = "NO"
    set_pixels(ds, pixels, photometric=photometric, bits_stored=12, window=window)
    return part10_bytes(ds)


def set_pixels(ds, pixels, *, photometric="MONOCHROME2", bits_stored=None, slope=1, intercept=0, window=None):
    """The image pixel module of one unsigned greyscale frame (bits allocated from pixels' dtype)."""
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.tobytes()


def part10_bytes(ds, *, preamble=None, **meta_fields) -> bytes:
    """ds as DICOM Part 10 bytes (explicit VR little endian); meta_fields go in its file meta."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword, value in meta_fields.items():
        setattr(meta, keyword, value)
    ds.file_meta = meta
    if preamble is not None:
        ds.preamble = preamble
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()
