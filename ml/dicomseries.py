"""DICOM MR series built from one lgg-flair patient's FLAIR slices, as a scanner would send them:
test data for series uploads and the PACS round trip (single-frame instances or one multi-frame).

lgg-flair names keep the patient and the slice: ``{yes,no}/TCGA_<site>_<patient>_<date>_<slice>.jpg``
(``yes`` holds the slices with tumour). The JPEGs carry no geometry, so the pixel spacing and the
slice spacing here are nominal, the same for every patient.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

LGG_NAME = re.compile(r"^(?P<patient>TCGA_[A-Z0-9]{2}_[A-Z0-9]{4})_(?P<date>\d{8})_(?P<slice>\d+)\.jpg$")
PIXEL_SPACING_MM = 0.9375
SLICE_SPACING_MM = 3.0
SERIES_DESCRIPTION = "FLAIR"

# Made-up identifying values for the privacy tests: each must be absent from whatever BrainScan
# stores, logs or shows after receiving the series. (StudyDate and friends come from the file name.)
IDENTIFYING_TAGS = {
    "PatientName": "Oyelowo^Marguerite",
    "PatientID": "MRN5519024",
    "PatientBirthDate": "19620917",
    "PatientSex": "F",
    "InstitutionName": "St Aldhelm Neurological Hospital",
    "ReferringPhysicianName": "Thistlewood^Caspar",
    "AccessionNumber": "ACC33018876",
    "StudyID": "ST8841",
    "StationName": "ALDHELM-MR2",
}
IDENTIFYING_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


@dataclass(frozen=True)
class Slice:
    path: Path
    patient: str  # TCGA_<site>_<patient>
    date: str  # YYYYMMDD, the acquisition date lgg-flair keeps in the name
    number: int
    tumour: bool


def lgg_patients(root) -> dict[str, list[Slice]]:
    """Every patient of an lgg-flair folder, with their slices in slice order."""
    patients: dict[str, list[Slice]] = {}
    for folder, tumour in (("yes", True), ("no", False)):
        for path in sorted((Path(root) / folder).glob("*.jpg")):
            match = LGG_NAME.match(path.name)
            if match is None:
                raise ValueError(f"{path} is not named TCGA_<site>_<patient>_<date>_<slice>.jpg")
            patient = match["patient"]
            patients.setdefault(patient, []).append(
                Slice(path, patient, match["date"], int(match["slice"]), tumour)
            )
    for slices in patients.values():
        slices.sort(key=lambda item: item.number)
    return patients


def patient_slices(root, patient: str) -> list[Slice]:
    """One patient's slices in slice order; ``patient`` as in the names, e.g. ``TCGA_CS_4942``."""
    try:
        return lgg_patients(root)[patient]
    except KeyError:
        raise ValueError(f"no slices of patient {patient} under {root}") from None


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


def _uid(slices: list[Slice], what: str, salt: str) -> str:
    # Derived, so the same patient always gives the same study: a test can send it twice.
    return generate_uid(entropy_srcs=[slices[0].patient, slices[0].date, what, salt])


def build_series(slices: list[Slice], *, identifying=False, salt="") -> list[Dataset]:
    """One MR Image Storage instance per slice (MONOCHROME2, 8-bit, Explicit VR Little Endian),
    one Study and Series UID for the patient, InstanceNumber and position from the slice number.

    With ``identifying``, the instances also carry IDENTIFYING_TAGS and the acquisition date, as a
    hospital's would. ``salt`` gives the same slices other UIDs (a second, distinct study).
    """
    if not slices:
        raise ValueError("a series needs at least one slice")
    study_uid, series_uid = _uid(slices, "study", salt), _uid(slices, "series", salt)
    frame_of_reference = _uid(slices, "frame", salt)
    datasets = []
    for item in slices:
        pixels = _pixels(item.path)
        ds = _patient_and_study(slices[0], study_uid, identifying)
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1
        ds.SeriesDescription = SERIES_DESCRIPTION
        ds.FrameOfReferenceUID = frame_of_reference
        ds.PositionReferenceIndicator = ""
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = _uid(slices, f"instance-{item.number}", salt)
        ds.InstanceNumber = item.number
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        ds.ScanningSequence = "IR"  # FLAIR: fluid-attenuated inversion recovery
        ds.SequenceVariant = ["SK", "SP"]
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.EchoTrainLength = 1
        ds.SliceThickness = SLICE_SPACING_MM
        ds.SpacingBetweenSlices = SLICE_SPACING_MM
        # Axial slices, head first supine: rows run right to left, columns anterior to posterior.
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        # lgg-flair does not say which end slice 1 is; it is put on top so that a volume sorted
        # along the slice normal (highdicom, viewers) lists the slices in their numbered order.
        z = -(item.number - 1) * SLICE_SPACING_MM
        corner = -PIXEL_SPACING_MM * pixels.shape[1] / 2
        ds.ImagePositionPatient = [corner, corner, z]
        ds.SliceLocation = z
        ds.PixelSpacing = [PIXEL_SPACING_MM, PIXEL_SPACING_MM]
        ds.BurnedInAnnotation = "NO"
        _set_pixels(ds, pixels)
        datasets.append(_with_file_meta(ds))
    return datasets


def build_multiframe(slices: list[Slice], *, identifying=False, salt="") -> Dataset:
    """The same series as one multi-frame object: a Legacy Converted Enhanced MR Image (highdicom),
    one frame per slice in slice order, each frame's position in its functional groups."""
    from highdicom.legacy import LegacyConvertedEnhancedMRImage

    single = build_series(slices, identifying=identifying, salt=salt)
    image = LegacyConvertedEnhancedMRImage(
        legacy_datasets=single,
        series_instance_uid=_uid(slices, "multiframe-series", salt),
        series_number=2,
        sop_instance_uid=_uid(slices, "multiframe-instance", salt),
        instance_number=1,
    )
    image.SeriesDescription = SERIES_DESCRIPTION
    image.BurnedInAnnotation = "NO"
    return image


def _patient_and_study(first: Slice, study_uid: str, identifying: bool) -> Dataset:
    ds = Dataset()
    # Type 2 attributes: present, empty unless the series is meant to carry identity.
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, "")
    ds.ReferringPhysicianName = ds.AccessionNumber = ds.StudyID = ""
    ds.StudyDate = ds.StudyTime = ""
    if identifying:
        for keyword, value in IDENTIFYING_TAGS.items():
            setattr(ds, keyword, value)
        for keyword in IDENTIFYING_DATES:
            setattr(ds, keyword, first.date)
        ds.StudyTime = "101500"
    ds.StudyInstanceUID = study_uid
    ds.StudyDescription = "MRI brain"
    ds.Modality = "MR"
    ds.Manufacturer = "BrainScan test series"
    ds.BodyPartExamined = "BRAIN"
    ds.PatientPosition = "HFS"
    return ds


def _set_pixels(ds: Dataset, pixels: np.ndarray):
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.WindowCenter, ds.WindowWidth = 127.5, 256
    ds.PixelData = pixels.tobytes()


def _with_file_meta(ds: Dataset) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    return ds
