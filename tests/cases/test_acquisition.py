"""What a DICOM upload keeps for the viewer (cases.acquisition): allow-listed technical attributes
and the slice's window, never an attribute the de-identification profile takes out."""

import io
import json
import re

import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from pydicom.datadict import dictionary_VR

from cases import acquisition, deidentification
from cases.models import Scan
from tests.conftest import real_mri_images
from tests.dicom_files import IDENTIFYING, OFFSET, SCALE, mri_dicom
from tests.factories import png_bytes

pytestmark = pytest.mark.django_db

# The profile's rules by VR: these VRs are removed or blanked wherever they occur.
PROFILE_VRS = {"PN", "DA", "TM", "DT", "AS", "LT", "ST", "UT", "UI"}


def profile_keywords() -> set[str]:
    text = deidentification.RECIPE_PATH.read_text()
    return set(re.findall(r"^(?:REMOVE|BLANK|REPLACE|KEEP|ADD|JITTER)\s+([A-Za-z]+)\s*$", text, re.M))


def upload(client, case, name, data):
    files = [SimpleUploadedFile(name, data, content_type="application/octet-stream")]
    return client.post(reverse("cases:upload", args=[case.pk]), {"files": files})


@pytest.fixture
def slice_path():
    return real_mri_images(1, classes=("glioma",))[0]


def test_allow_list_holds_no_attribute_the_profile_removes_blanks_or_replaces():
    removed = profile_keywords()
    assert {"SeriesDescription", "ProtocolName", "PatientID", "InstitutionName"} <= removed  # parsed
    # The one exception: SeriesDescription, retained only when clean (Clean Descriptors Option).
    assert removed & set(acquisition.ALLOWED_ATTRIBUTES) == {"SeriesDescription"}
    assert set(acquisition.RETAINED_WHEN_CLEAN) == {"SeriesDescription"}
    for keyword in acquisition.ALLOWED_ATTRIBUTES:
        assert dictionary_VR(keyword) not in PROFILE_VRS, keyword


def test_dicom_upload_stores_the_allow_listed_attributes(case, owner_client, slice_path):
    response = upload(owner_client, case, "slice.dcm", mri_dicom(slice_path))
    assert response.status_code == 302
    scan = Scan.objects.get(case=case)
    stored = scan.acquisition["attributes"]
    assert stored["Modality"] == "MR"
    assert stored["RepetitionTime"] == "5000" and stored["EchoTime"] == "93.5"
    assert stored["PixelSpacing"] == "0.45, 0.45"
    assert stored["ScanningSequence"] == "SE" and stored["SequenceName"] == "*tse2d1_15"
    assert set(stored) <= set(acquisition.ALLOWED_ATTRIBUTES)


def test_no_removed_attribute_or_identifying_value_is_stored(case, owner_client, slice_path):
    upload(owner_client, case, "slice.dcm", mri_dicom(slice_path))
    scan = Scan.objects.get(case=case)
    text = json.dumps(scan.acquisition)
    # "Ax T2 Quarrington" has a name in it: removed, not cleaned.
    assert profile_keywords().isdisjoint(scan.acquisition["attributes"])
    for keyword, value in IDENTIFYING.items():
        assert keyword not in text
        assert value.split("^")[0] not in text


def test_the_window_is_placed_on_the_preview_as_the_render_applies_it(case, owner_client, slice_path):
    center, width = 1100, 1800
    upload(owner_client, case, "slice.dcm", mri_dicom(slice_path, window=(center, width)))
    scan = Scan.objects.get(case=case)
    window = scan.acquisition["window"]
    assert (window["center"], window["width"]) == ("1100", "1800")
    preview = np.asarray(Image.open(io.BytesIO(scan.preview_png())), dtype=np.float64)
    stored = pydicom.dcmread(scan.image.open("rb")).pixel_array.astype(np.float64)
    inside = (stored > center - width / 2 + 5) & (stored < center + width / 2 - 5)
    low = window["preview_center"] - window["preview_width"] / 2
    expected = low + (stored - (center - width / 2)) / width * window["preview_width"]
    assert inside.sum() > 1000
    assert np.abs(preview[inside] - expected[inside]).mean() < 2.0


def test_monochrome1_window_is_mirrored_like_its_preview(slice_path):
    dataset = pydicom.dcmread(io.BytesIO(mri_dicom(slice_path, photometric="MONOCHROME1")))
    plain = pydicom.dcmread(io.BytesIO(mri_dicom(slice_path)))
    inverted, upright = acquisition.render_window(dataset), acquisition.render_window(plain)
    assert inverted["preview_width"] == upright["preview_width"]
    assert inverted["preview_center"] == pytest.approx(255 - upright["preview_center"], abs=0.2)


def test_a_slice_without_window_keeps_its_attributes_only(slice_path):
    dataset = pydicom.dcmread(io.BytesIO(mri_dicom(slice_path, window=None)))
    described = acquisition.describe(dataset)
    assert "window" not in described and described["attributes"]["Modality"] == "MR"


def test_image_upload_has_no_acquisition(case, owner_client):
    upload(owner_client, case, "slice.png", png_bytes(size=(128, 128)))
    assert Scan.objects.get(case=case).acquisition == {}


def test_stored_pixels_are_the_helpers_scale(slice_path):
    # Guards the arithmetic of the window test above.
    dataset = pydicom.dcmread(io.BytesIO(mri_dicom(slice_path)))
    grey = np.asarray(Image.open(slice_path).convert("L"), dtype=np.int64)
    assert (dataset.pixel_array.astype(np.int64) == grey * SCALE + OFFSET).all()


@pytest.mark.parametrize(
    ("timings", "expected"),
    [
        ({"ScanningSequence": "SE", "RepetitionTime": "500", "EchoTime": "15"}, "T1"),
        ({"ScanningSequence": "SE", "RepetitionTime": "5000", "EchoTime": "93.5"}, "T2"),
        ({"ScanningSequence": "SE", "RepetitionTime": "3000", "EchoTime": "20"}, "Proton density"),
        (
            {
                "ScanningSequence": "SE, IR",
                "RepetitionTime": "9000",
                "EchoTime": "120",
                "InversionTime": "2500",
            },
            "FLAIR (fluid-suppressed T2)",
        ),
        (
            {"ScanningSequence": "GR, IR", "RepetitionTime": "2300", "EchoTime": "3", "InversionTime": "900"},
            "T1 (inversion recovery)",
        ),
        ({"ScanningSequence": "GR", "RepetitionTime": "600", "EchoTime": "20"}, None),  # T1 or T2*
        ({"ScanningSequence": "SE", "RepetitionTime": "1200", "EchoTime": "50"}, None),  # in between
        ({"Modality": "MR"}, None),
    ],
)
def test_weighting_is_estimated_only_where_the_timings_decide(timings, expected):
    assert acquisition.estimated_weighting(timings) == expected


@pytest.mark.parametrize(
    ("description", "kept"),
    [
        ("AX T2 FLAIR", "AX T2 FLAIR"),
        ("T1 post Gd 3D", "T1 POST GD 3D"),
        ("sag_t1_mprage", "SAG T1 MPRAGE"),
        ("DWI b 1000", None),  # a four-digit number
        ("Ax T2 Quarrington", None),  # a name
        ("Ax T1 Kowalczyk follow-up", None),
        ("T2 20240301", None),  # a date
        ("T2 01.03.24", None),  # a date in parts
        ("ACC77120955", None),  # an accession-like number
        ("T1 4417209", None),
        ("", None),
        ("---", None),
    ],
)
def test_series_description_is_kept_only_when_every_word_is_a_sequence_term(description, kept):
    assert deidentification.clean_series_description(description) == kept


def test_a_clean_series_description_is_stored_coded_and_reported_by_keyword(case, owner_client, slice_path):
    upload(owner_client, case, "slice.dcm", mri_dicom(slice_path, SeriesDescription="Ax T2 flair"))
    scan = Scan.objects.get(case=case)
    assert scan.acquisition["attributes"]["SeriesDescription"] == "AX T2 FLAIR"
    assert scan.series_description == "AX T2 FLAIR"
    dataset = pydicom.dcmread(scan.image.open("rb"))
    assert dataset.SeriesDescription == "AX T2 FLAIR"
    codes = [item.CodeValue for item in dataset.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105"]
    report = scan.anonymisation_report.files[0]
    assert report["cleaned"] == ["SeriesDescription"]
    assert "SeriesDescription" not in report["removed"] + report["replaced"] + report["blanked"]
    assert "flair" not in json.dumps(report).lower()  # keyword only, never the value
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert '<span class="series-description">AX T2 FLAIR</span>' in page


def test_a_series_description_with_a_name_is_removed_and_reported_so(case, owner_client, slice_path):
    upload(owner_client, case, "slice.dcm", mri_dicom(slice_path))  # "Ax T2 Quarrington"
    scan = Scan.objects.get(case=case)
    dataset = pydicom.dcmread(scan.image.open("rb"))
    assert "SeriesDescription" not in dataset
    assert [item.CodeValue for item in dataset.DeidentificationMethodCodeSequence] == ["113100"]
    report = scan.anonymisation_report.files[0]
    assert "SeriesDescription" in report["removed"] and report["cleaned"] == []
    assert scan.series_description == ""
