"""GET /api/v1/cases/{id}/series/: the case's studies and series, scan ids in slice order."""

import random

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cases.models import AuditEvent, Series
from ml.dicomseries import build_series, patient_slices
from tests.cases.series_data import LGG_FLAIR, PATIENT, as_file

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def series_files():
    if not LGG_FLAIR.is_dir():
        pytest.skip(f"lgg-flair slices not found at {LGG_FLAIR}")
    files = [
        (f"{i}.dcm", as_file(ds)) for i, ds in enumerate(build_series(patient_slices(LGG_FLAIR, PATIENT)[:5]))
    ]
    random.Random(3).shuffle(files)
    return files


def test_studies_and_series_with_scans_in_slice_order(owner_api, owner, case, series_files):
    payload = [SimpleUploadedFile(name, data) for name, data in series_files]
    assert owner_api.post(f"/api/v1/cases/{case.pk}/scans/", {"files": payload}).status_code == 202
    response = owner_api.get(f"/api/v1/cases/{case.pk}/series/")
    assert response.status_code == 200, response.content
    (study,) = response.json()
    (series,) = study["series"]
    row = Series.objects.get(case=case)
    assert study["study_uid"] == row.study.study_uid and series["series_uid"] == row.series_uid
    assert (series["modality"], series["orientation"], series["slice_count"]) == ("MR", "axial", 5)
    assert series["scans"] == [scan.pk for scan in row.slices()]
    scans = owner_api.get(f"/api/v1/cases/{case.pk}/scans/").json()
    assert {scan["series"] for scan in scans} == {series["id"]}
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.CASE_VIEW, actor=owner).exists()


def test_a_case_of_single_images_has_no_studies(owner_api, case):
    assert owner_api.get(f"/api/v1/cases/{case.pk}/series/").json() == []


def test_outsiders_get_404(api_for, case):
    assert api_for("outsider").get(f"/api/v1/cases/{case.pk}/series/").status_code == 404
