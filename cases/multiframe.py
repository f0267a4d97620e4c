"""A multi-frame MR or CT object (Enhanced or Legacy Converted Enhanced) as single-frame slices:
each frame becomes one MR/CT Image Storage dataset with the frame's own position, orientation,
spacing, window and rescale, so the worker, the viewer and the series grouping see one slice each.

Runs on the de-identified dataset; each frame's SOPInstanceUID is derived from the object's and
the frame number, so the same object uploaded twice gives the same slices (remapped per case).
"""

import copy
from dataclasses import replace

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage, generate_uid

# The multi-frame storage classes we split, and the single-frame class each frame becomes.
SINGLE_FRAME_CLASS = {
    "1.2.840.10008.5.1.4.1.1.4.1": MRImageStorage,  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4": MRImageStorage,  # Legacy Converted Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1": CTImageStorage,  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2": CTImageStorage,  # Legacy Converted Enhanced CT Image Storage
    MRImageStorage: MRImageStorage,  # an MR/CT Image object may hold several frames too
    CTImageStorage: CTImageStorage,
}
MULTI_FRAME_ONLY = {
    "PixelData",
    "NumberOfFrames",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
    "DimensionOrganizationSequence",
    "DimensionIndexSequence",
    "FrameIncrementPointer",
    "SourceImageEvidenceSequence",
    "ReferencedImageEvidenceSequence",
}
# Attributes of the functional groups (and of highdicom's "unassigned converted" groups) that a
# single-frame image carries at its top level.
FRAME_ATTRIBUTES = {
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "SliceLocation",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "ScanningSequence",
    "SequenceVariant",
}
RENAMED = {"EffectiveEchoTime": "EchoTime"}


def frame_count(dataset) -> int:
    return int(dataset.get("NumberOfFrames", 1) or 1)


def _frame_attributes(groups) -> dict:
    """FRAME_ATTRIBUTES found in one functional-groups item (one level of macros below it)."""
    found = {}
    for macro in groups or []:
        for item in macro.value if macro.VR == "SQ" else []:
            for element in item:
                keyword = RENAMED.get(element.keyword, element.keyword)
                if keyword in FRAME_ATTRIBUTES and element.VR != "SQ":
                    found[keyword] = copy.deepcopy(element.value)
    return found


def split(dataset) -> list[Dataset]:
    """One single-frame dataset per frame, in the object's frame order; [dataset] for one frame."""
    frames = frame_count(dataset)
    if frames == 1 and "PerFrameFunctionalGroupsSequence" not in dataset:
        return [dataset]
    pixels = dataset.pixel_array.reshape(frames, int(dataset.Rows), int(dataset.Columns))
    shared = (dataset.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    per_frame = list(dataset.get("PerFrameFunctionalGroupsSequence") or [])
    template = Dataset()
    for element in dataset:
        if element.keyword not in MULTI_FRAME_ONLY:
            template.add(copy.deepcopy(element))
    template.SOPClassUID = SINGLE_FRAME_CLASS[str(dataset.SOPClassUID)]
    source_uid = str(dataset.SOPInstanceUID)
    slices = []
    for index in range(frames):
        frame = copy.deepcopy(template)
        attributes = _frame_attributes(shared) | _frame_attributes(per_frame[index] if per_frame else None)
        for keyword, value in attributes.items():
            setattr(frame, keyword, value)
        frame.SOPInstanceUID = generate_uid(prefix="2.25.", entropy_srcs=[source_uid, f"frame-{index}"])
        frame.InstanceNumber = index + 1
        frame.ImageType = list(dataset.get("ImageType", ["DERIVED", "PRIMARY"]))[:4]
        frame.PixelData = pixels[index].tobytes()
        frame.file_meta = copy.deepcopy(dataset.file_meta)
        frame.file_meta.MediaStorageSOPClassUID = frame.SOPClassUID
        frame.file_meta.MediaStorageSOPInstanceUID = frame.SOPInstanceUID
        frame.preamble = b"\0" * 128
        slices.append(frame)
    return slices


def frames(image) -> list:
    """An upload's cleaned image as one per slice: a multi-frame DICOM one per frame (same report),
    anything else as is. ``image`` is a cases.uploads.CleanImage."""
    if image.dicom is None:
        return [image]
    slices = split(image.dicom)
    if slices == [image.dicom]:
        return [image]
    return [replace(image, dicom=frame) for frame in slices]
