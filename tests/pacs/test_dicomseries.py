"""ml/dicomseries.py: an lgg-flair patient as a DICOM MR series, single-frame and multi-frame."""

import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from cases.dicomread import read_dicom
from ml.dicomseries import IDENTIFYING_TAGS, build_multiframe, build_series, patient_slices

from .conftest import LGG_FLAIR


def as_file(dataset) -> bytes:
    out = io.BytesIO()
    pydicom.dcmwrite(out, dataset, enforce_file_format=True)
    return out.getvalue()


def test_one_study_and_series_in_slice_order_with_the_jpeg_pixels(lgg_slices):
    series = build_series(lgg_slices)

    assert len(series) == len(lgg_slices) == 20
    assert len({ds.StudyInstanceUID for ds in series}) == len({ds.SeriesInstanceUID for ds in series}) == 1
    assert len({ds.SOPInstanceUID for ds in series}) == 20
    assert [ds.InstanceNumber for ds in series] == list(range(1, 21))
    locations = [float(ds.SliceLocation) for ds in series]
    assert np.allclose(np.diff(locations), -3.0)
    assert [float(ds.ImagePositionPatient[2]) for ds in series] == locations
    for ds, item in zip(series, lgg_slices, strict=True):
        assert (ds.Modality, ds.SeriesDescription, ds.SOPClassUID.name) == ("MR", "FLAIR", "MR Image Storage")
        assert (ds.PhotometricInterpretation, ds.BitsAllocated) == ("MONOCHROME2", 8)
        assert np.array_equal(ds.pixel_array, np.asarray(Image.open(item.path).convert("L")))


def test_the_upload_reader_accepts_every_instance(lgg_slices):
    for ds in build_series(lgg_slices[:3]):
        assert read_dicom(as_file(ds), max_pixels=10**6).SOPInstanceUID == ds.SOPInstanceUID


def test_identifying_tags_only_on_request(lgg_slices):
    plain, identifying = build_series(lgg_slices[:1]), build_series(lgg_slices[:1], identifying=True)

    for keyword, value in IDENTIFYING_TAGS.items():
        assert str(identifying[0].get(keyword)) == value
        assert not plain[0].get(keyword)
    assert identifying[0].StudyDate == "19970222"
    assert not plain[0].StudyDate


def test_the_same_patient_is_the_same_study_unless_salted(lgg_slices):
    first, again, other = (build_series(lgg_slices[:2], salt=salt) for salt in ("", "", "second visit"))

    assert [ds.SOPInstanceUID for ds in first] == [ds.SOPInstanceUID for ds in again]
    assert first[0].StudyInstanceUID != other[0].StudyInstanceUID
    assert not {ds.SOPInstanceUID for ds in first} & {ds.SOPInstanceUID for ds in other}


def test_multiframe_holds_every_slice_in_order_with_its_position(lgg_slices):
    series = build_series(lgg_slices)
    image = pydicom.dcmread(io.BytesIO(as_file(build_multiframe(lgg_slices))))

    assert int(image.NumberOfFrames) == 20
    assert image.SOPClassUID.name == "Legacy Converted Enhanced MR Image Storage"
    assert image.StudyInstanceUID == series[0].StudyInstanceUID
    assert image.SeriesDescription == "FLAIR"
    frames = zip(image.pixel_array, series, image.PerFrameFunctionalGroupsSequence, strict=True)
    for frame, ds, groups in frames:
        assert np.array_equal(frame, ds.pixel_array)
        assert groups.PlanePositionSequence[0].ImagePositionPatient == ds.ImagePositionPatient


def test_an_unknown_patient_is_an_error_naming_it():
    if not LGG_FLAIR.is_dir():
        pytest.skip(f"lgg-flair slices not found at {LGG_FLAIR}")
    with pytest.raises(ValueError, match="TCGA_XX_0000"):
        patient_slices(LGG_FLAIR, "TCGA_XX_0000")
