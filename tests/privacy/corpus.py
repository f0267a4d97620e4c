"""Synthetic DICOM slices carrying identifying values in every attribute the basic profile covers."""

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import MRImageStorage

from tests.dicom_files import part10_bytes, set_pixels

# Every string here must be absent from whatever BrainScan stores, logs or shows afterwards.
IDENTIFIERS = {
    "PatientName": "Kowalczyk^Henrietta",
    "PatientID": "MRN8830417",
    "PatientBirthDate": "19570312",
    "PatientAddress": "17 Larkspur Crescent Dunmore",
    "PatientTelephoneNumbers": "0771234987",
    "OtherPatientIDs": "NHS4857203961",
    "OtherPatientNames": "Henny^Kowal",
    "PatientMotherBirthName": "Brzezinska",
    "PatientAge": "067Y",
    "PatientComments": "Prefers Henny; lives with daughter Olga",
    "AdditionalPatientHistory": "Fell at Dunmore bus depot",
    "AccessionNumber": "ACC77120955",
    "StudyID": "STUDY5521",
    "StudyDate": "20240229",
    "SeriesDate": "20240228",
    "AcquisitionDate": "20240227",
    "ContentDate": "20240226",
    "StudyTime": "134512",
    "InstitutionName": "St Wendeline Infirmary",
    "InstitutionAddress": "4 Quarry Lane Ballymote",
    "InstitutionalDepartmentName": "Quillfeather Neuroradiology",
    "ReferringPhysicianName": "Oyelaran^Babatunde",
    "PerformingPhysicianName": "Vasquez-Thornbury^Imelda",
    "NameOfPhysiciansReadingStudy": "Achterberg^Ruud",
    "OperatorsName": "Pettigrew^Lionel",
    "StationName": "WENDELINE-MR3",
    "DeviceSerialNumber": "SN-99812734",
    "StudyDescription": "Head for Henrietta Kowalczyk",
    "SeriesDescription": "Ax T1 Kowalczyk follow-up",
    "ProtocolName": "Dunmore stroke protocol",
    "ImageComments": "Patient Kowalczyk moved",
    "RequestingPhysician": "Fairbairn^Moira",
}
UIDS = {
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1111",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.2222",
    "FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.3333",
}
PRIVATE_VALUE = "Kowalczyk private note 8830417"
OVERLAY_TEXT = "HENRIETTA"
# Substrings searched for everywhere (case-insensitive); the UIDs too.
NEEDLES = sorted(
    {v for v in IDENTIFIERS.values() if len(v) >= 6}
    | {"Kowalczyk", "Henrietta", "8830417", "Dunmore", "Wendeline", "Oyelaran", "Pettigrew", "Quillfeather"}
    | {uid for uid in UIDS.values()}
)


def dicom_slice(
    *,
    bits=16,
    photometric="MONOCHROME2",
    slope=1.0,
    intercept=0.0,
    burned_in: bool | None = False,
    instance=1,
    size=64,
    window=None,
) -> bytes:
    """One MR slice as DICOM Part 10 bytes, with identifiers, a private block and an overlay."""
    rng = np.random.default_rng(instance)
    yy, xx = np.mgrid[:size, :size]
    head = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size * 0.4) ** 2
    high = 255 if bits == 8 else 4000
    pixels = np.where(head, rng.integers(high // 3, high, (size, size)), rng.integers(0, 10, (size, size)))
    pixels = pixels.astype(np.uint8 if bits == 8 else np.uint16)

    ds = Dataset()
    for keyword, value in IDENTIFIERS.items():
        setattr(ds, keyword, value)
    for keyword, value in UIDS.items():
        setattr(ds, keyword, value)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.4444.{instance}"
    ds.Modality = "MR"
    ds.Manufacturer = "Acme"
    ds.InstanceNumber = instance
    if burned_in is not None:  # None: the header does not say
        ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    ds.ReferencedStudySequence = Sequence([Dataset()])
    ds.ReferencedStudySequence[0].ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.5555"
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.RequestAttributesSequence[0].RequestedProcedureID = "RP-8830417"
    # A private block that carries identity, as some vendors' do.
    block = ds.private_block(0x0029, "ACME KOWALCZYK", create=True)
    block.add_new(0x10, "LO", PRIVATE_VALUE)
    # An overlay plane with a name drawn in it.
    ds.add_new(0x60000010, "US", size)
    ds.add_new(0x60000011, "US", size)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000022, "LO", OVERLAY_TEXT)
    ds.add_new(0x60003000, "OW", np.packbits(head.astype(np.uint8), bitorder="little").tobytes())

    set_pixels(ds, pixels, photometric=photometric, slope=slope, intercept=intercept, window=window)
    return part10_bytes(
        ds, preamble=b"Kowalczyk MRN8830417".ljust(128, b"\0"), SourceApplicationEntityTitle="WENDELINE"
    )


def corpus() -> dict[str, bytes]:
    """Named variants: 8/16-bit, MONOCHROME1/2, rescale slope/intercept, windowed."""
    return {
        "mono2-16bit.dcm": dicom_slice(instance=1),
        "mono1-16bit-rescaled.dcm": dicom_slice(
            instance=2, photometric="MONOCHROME1", slope=2.5, intercept=-1024
        ),
        "mono2-8bit.dcm": dicom_slice(instance=3, bits=8),
        "mono2-16bit-windowed.dcm": dicom_slice(instance=4, window=(2000, 3000)),
    }


def no_image_dicom() -> bytes:
    """A DICOM object without pixels (a structured report), as a PACS export might contain."""
    ds = Dataset()
    ds.PatientName = IDENTIFIERS["PatientName"]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.6666"
    ds.Modality = "SR"
    return part10_bytes(ds)
