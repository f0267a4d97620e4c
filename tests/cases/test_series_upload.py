"""Uploading a whole series: many .dcm files, a zip of a study, a multi-frame object; each lands
in its case's study and series (by the remapped UIDs), in slice order."""

import io
import random

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.models import Scan, Series, Study
from ml.dicomseries import build_multiframe, build_series
from tests.factories import CaseFactory

from .series_data import as_file, zipped

pytestmark = pytest.mark.django_db

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}


def upload(client, case, files):
    payload = [SimpleUploadedFile(name, data) for name, data in files]
    return client.post(reverse("cases:upload", args=[case.pk]), {"files": payload}, **XHR)


def api_upload(client, case, files):
    payload = [SimpleUploadedFile(name, data) for name, data in files]
    return client.post(f"/api/v1/cases/{case.pk}/scans/", {"files": payload})


def stored_uid(scan, keyword):
    with scan.image.open("rb") as stored:
        return str(pydicom.dcmread(stored, stop_before_pixels=True).get(keyword))


def test_twenty_dcm_files_at_once_become_one_series_in_slice_order(owner_client, case, lgg_slices):
    series = build_series(lgg_slices)
    shuffled = list(enumerate(series))
    random.Random(4).shuffle(shuffled)
    response = upload(owner_client, case, [(f"{i}.dcm", as_file(ds)) for i, ds in shuffled])
    assert response.status_code == 201, response.content
    (study,) = Study.objects.filter(case=case)
    (row,) = Series.objects.filter(case=case)
    assert row.study == study
    assert (row.modality, row.orientation) == ("MR", Series.Orientation.AXIAL)
    assert row.slices().count() == 20
    assert [s.series_instance for s in row.slices()] == [item.number for item in lgg_slices]
    # Keyed by the remapped UIDs, never the hospital's.
    first = row.slices().first()
    assert row.series_uid == stored_uid(first, "SeriesInstanceUID") != series[0].SeriesInstanceUID
    assert study.study_uid == stored_uid(first, "StudyInstanceUID") != series[0].StudyInstanceUID


def test_the_api_takes_many_files_too(client_for, owner, case, lgg_slices):
    client = client_for(owner)
    response = api_upload(
        client, case, [(f"{i}.dcm", as_file(ds)) for i, ds in enumerate(build_series(lgg_slices))]
    )
    assert response.status_code == 202, response.content
    assert len(response.json()["scans"]) == 20
    assert Series.objects.get(case=case).slices().count() == 20


def test_a_second_upload_of_the_same_series_joins_its_series_row(owner_client, case, lgg_slices):
    series = build_series(lgg_slices[:4])
    upload(owner_client, case, [("a.dcm", as_file(series[0])), ("b.dcm", as_file(series[1]))])
    upload(owner_client, case, [("c.dcm", as_file(series[2])), ("d.dcm", as_file(series[3]))])
    assert Series.objects.filter(case=case).count() == 1
    assert Series.objects.get(case=case).slices().count() == 4


def test_the_same_series_in_another_case_is_another_row_with_other_uids(
    owner_client, case, owner, team, lgg_slices
):
    other_case = CaseFactory(team=team, created_by=owner)
    files = [("a.dcm", as_file(build_series(lgg_slices[:1])[0]))]
    upload(owner_client, case, files)
    upload(owner_client, other_case, files)
    first, second = Series.objects.order_by("id")
    assert first.case != second.case and first.series_uid != second.series_uid


def test_a_zip_of_a_study_with_two_series(owner_client, case, lgg_slices):
    flair = build_series(lgg_slices[:5])
    other = build_series(lgg_slices[5:8], salt="second series")
    for ds in other:
        ds.StudyInstanceUID = flair[0].StudyInstanceUID
    members = {f"study/flair/{i}.dcm": as_file(ds) for i, ds in enumerate(flair)}
    members |= {f"study/other/{i}.dcm": as_file(ds) for i, ds in enumerate(other)}
    members["DICOMDIR"] = b"an index, not an image"
    response = upload(owner_client, case, [("study.zip", zipped(members))])
    assert response.status_code == 201, response.content
    assert Study.objects.filter(case=case).count() == 1
    counts = sorted(series.slices().count() for series in Series.objects.filter(case=case))
    assert counts == [3, 5]


def test_a_multiframe_object_becomes_one_slice_per_frame(owner_client, case, lgg_slices):
    image = build_multiframe(lgg_slices[:6])
    response = upload(owner_client, case, [("volume.dcm", as_file(image))])
    assert response.status_code == 201, response.content
    (series,) = Series.objects.filter(case=case)
    slices = list(series.slices())
    assert len(slices) == 6 and series.orientation == Series.Orientation.AXIAL
    single = build_series(lgg_slices[:6])
    for scan, source in zip(slices, single, strict=True):
        with scan.image.open("rb") as stored:
            frame = pydicom.dcmread(io.BytesIO(stored.read()))
        assert frame.SOPClassUID == pydicom.uid.MRImageStorage and "NumberOfFrames" not in frame
        assert (frame.pixel_array == source.pixel_array).all()
        assert [float(v) for v in frame.ImagePositionPatient] == [
            float(v) for v in source.ImagePositionPatient
        ]
        assert scan.acquisition["attributes"]["Modality"] == "MR"
    assert len({scan.sha256 for scan in slices}) == 6


def test_too_many_frames_is_refused_naming_the_limit(owner_client, case, lgg_slices, settings):
    settings.UPLOAD_MAX_SLICES = 4
    response = upload(owner_client, case, [("volume.dcm", as_file(build_multiframe(lgg_slices[:6])))])
    assert response.status_code == 400
    assert "UPLOAD_MAX_SLICES" in response.json()["errors"][0]["message"]
    assert not Scan.objects.filter(case=case).exists()


def test_too_many_slices_in_one_upload_is_refused_with_413(owner_client, case, lgg_slices, settings):
    settings.UPLOAD_MAX_SLICES = 3
    files = [(f"{i}.dcm", as_file(ds)) for i, ds in enumerate(build_series(lgg_slices[:4]))]
    response = upload(owner_client, case, files)
    assert response.status_code == 413
    assert "UPLOAD_MAX_SLICES" in response.json()["errors"][0]["message"]
    assert not Scan.objects.filter(case=case).exists() and not Series.objects.exists()


def test_jpeg_and_png_scans_have_no_series(owner_client, case):
    from tests.conftest import real_mri_images

    path = real_mri_images(1)[0]
    assert upload(owner_client, case, [("a.jpg", path.read_bytes())]).status_code == 201
    assert Scan.objects.get(case=case).series is None
