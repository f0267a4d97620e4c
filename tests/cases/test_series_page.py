"""The case page groups scans by series in slice order; the viewer steps through a series."""

import random
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.models import Scan, Series
from inference import pipeline
from ml.dicomseries import build_series
from tests.conftest import real_mri_images

from .series_data import as_file

pytestmark = pytest.mark.django_db


def upload(client, case, files):
    payload = [SimpleUploadedFile(name, data) for name, data in files]
    response = client.post(reverse("cases:upload", args=[case.pk]), {"files": payload})
    assert response.status_code == 302, response.content


@pytest.fixture
def case_with_series(owner_client, case, lgg_slices):
    """A JPEG, then a 6-slice series sent out of order, then another JPEG."""
    images = real_mri_images(2)
    upload(owner_client, case, [("a.jpg", images[0].read_bytes())])
    shuffled = list(enumerate(build_series(lgg_slices[:6])))
    random.Random(7).shuffle(shuffled)
    upload(owner_client, case, [(f"{i}.dcm", as_file(ds)) for i, ds in shuffled])
    upload(owner_client, case, [("b.jpg", images[1].read_bytes())])
    for scan in Scan.objects.filter(case=case):
        pipeline.check_text(scan.pk)  # the worker's first step: the viewer shows checked scans only
    return case


def test_the_case_page_shows_each_series_in_slice_order_then_the_single_images(
    owner_client, case_with_series
):
    page = owner_client.get(reverse("cases:detail", args=[case_with_series.pk])).content.decode()
    series = Series.objects.get(case=case_with_series)
    in_order = [scan.pk for scan in series.slices()]
    singles = list(Scan.objects.filter(case=case_with_series, series=None).values_list("pk", flat=True))
    shown = [int(pk) for pk in re.findall(r'<article class="scan[^"]*" id="scan-(\d+)"', page)]
    assert shown == in_order + singles
    heading = re.search(r'<h3 class="series-heading">Series: (.*?)</h3>', page, re.S).group(1)
    assert "MR" in heading and "6 slices" in heading and "axial" in heading
    assert 'Single images <span class="muted">· 2' in page
    assert page.index("Series: MR") < page.index("Single images")


def test_the_viewer_steps_through_the_series_in_slice_order(owner_client, case_with_series):
    in_order = [scan.pk for scan in Series.objects.get(case=case_with_series).slices()]
    third = owner_client.get(reverse("cases:viewer", args=[in_order[2]]))
    assert (third.context["previous_pk"], third.context["next_pk"]) == (in_order[1], in_order[3])
    assert (third.context["position"], third.context["count"]) == (3, 6)
    last = owner_client.get(reverse("cases:viewer", args=[in_order[-1]]))
    assert last.context["next_pk"] is None


def test_a_single_image_steps_through_the_single_images_only(owner_client, case_with_series):
    first, second = Scan.objects.filter(case=case_with_series, series=None).order_by("id")
    response = owner_client.get(reverse("cases:viewer", args=[first.pk]))
    assert (response.context["previous_pk"], response.context["next_pk"], response.context["count"]) == (
        None,
        second.pk,
        2,
    )
