"""A hospital's series, identifying tags and all, uploaded as a zip (single slices and one
multi-frame object): nothing identifying in the database, the stored files or the logs; the
study, series and instance UIDs are the case's remapped ones."""

import io
import logging

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.models import Scan, Series, Study
from ml.dicomseries import IDENTIFYING_TAGS, build_multiframe, build_series, patient_slices
from tests.cases.series_data import LGG_FLAIR, PATIENT, as_file, zipped

from .test_dicom_upload import RANDOM_DIGITS, database_text

pytestmark = pytest.mark.django_db

# The hospital names its export folders after the patient: the names must not survive either.
FOLDER = "Oyelowo_Marguerite_MRN5519024"


@pytest.fixture
def hospital_series():
    if not LGG_FLAIR.is_dir():
        pytest.skip(f"lgg-flair slices not found at {LGG_FLAIR}")
    slices = patient_slices(LGG_FLAIR, PATIENT)
    return build_series(slices[:5], identifying=True), build_multiframe(slices[5:8], identifying=True)


def needles(single, multiframe) -> list[str]:
    # Values of one or two characters (PatientSex "F") turn up anywhere; their elements are
    # checked in the stored files instead.
    values = [value for value in IDENTIFYING_TAGS.values() if len(value) > 2]
    values += [str(single[0].StudyDate), FOLDER, "Marguerite", "MRN5519024"]
    uids = {
        str(ds.get(keyword))
        for ds in [*single, multiframe]
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    }
    return values + sorted(uids)


def leaks(blob, found_in) -> list[str]:
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
    masked = RANDOM_DIGITS.sub("<random>", text).lower()
    # Source UIDs are searched unmasked: a masked new UID cannot hide a source one.
    return [n for n in found_in if n.lower() in (text.lower() if n.startswith(("1.", "2.")) else masked)]


def test_a_zipped_identifying_series_arrives_with_none_of_its_identity(
    owner_client, case, hospital_series, caplog, capfd
):
    single, multiframe = hospital_series
    members = {f"{FOLDER}/FLAIR/{FOLDER}_{i}.dcm": as_file(ds) for i, ds in enumerate(single)}
    members[f"{FOLDER}/volume.dcm"] = as_file(multiframe)
    caplog.set_level(logging.DEBUG)
    response = owner_client.post(
        reverse("cases:upload", args=[case.pk]),
        {"files": [SimpleUploadedFile(f"{FOLDER}.zip", zipped(members))]},
    )
    assert response.status_code == 302
    out, err = capfd.readouterr()
    found = needles(single, multiframe)
    # The search finds them where they are: in what the hospital sent.
    assert set(leaks(as_file(single[0]), found)) >= set(IDENTIFYING_TAGS.values()) - {"F"}
    assert leaks(as_file(multiframe), found)

    scans = list(Scan.objects.filter(case=case))
    assert len(scans) == 8
    assert leaks(database_text(), found) == []
    assert leaks(caplog.text + out + err, found) == []
    for scan in scans:
        with default_storage.open(scan.image.name, "rb") as stored:
            data = stored.read()
        assert leaks(data, found) == [], scan.pk
        dataset = pydicom.dcmread(io.BytesIO(data))
        assert dataset.PatientIdentityRemoved == "YES"
        assert str(dataset.get("PatientSex", "")) in ("", None)
        assert str(dataset.StudyInstanceUID) == scan.series.study.study_uid
        assert str(dataset.SeriesInstanceUID) == scan.series.series_uid
    # One study, two series (the slices and the multi-frame object), all with the case's new UIDs.
    (study,) = Study.objects.filter(case=case)
    assert study.study_uid != str(single[0].StudyInstanceUID)
    assert Series.objects.filter(case=case).count() == 2
    page = owner_client.get(reverse("cases:detail", args=[case.pk]))
    api = owner_client.get(f"/api/v1/cases/{case.pk}/series/")
    assert page.status_code == api.status_code == 200
    assert leaks(page.content, found) == [] and leaks(api.content, found) == []
