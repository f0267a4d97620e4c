"""Images and reviews of cases without analytics consent never enter a statistic, montage or
field-performance figure; a withdrawal hides cached statistics at once and queues a recompute."""

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from analytics import tasks
from analytics.importer import import_reviewed_scans
from analytics.models import DatasetStats
from analytics.performance import field_performance
from analytics.stats import compute_dataset_stats
from cases.models import Consent, Scan
from ml.preprocess import preprocess
from tests.conftest import real_mri_images
from tests.factories import CaseFactory, PredictionFactory, ReviewFactory, ScanFactory

from .conftest import GREY_LEVEL, shown_grey

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed_cases(team, owner, steward, model_version):
    """Three cases of four reviewed glioma/notumor scans each: analytics consent granted,
    granted (withdrawn later by a test), and never given."""
    images = iter(real_mri_images(12, classes=("glioma", "notumor")))
    cases = {}
    for name in ("granted", "to_withdraw", "pending"):
        case = CaseFactory(team=team, created_by=owner)
        if name != "pending":
            Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
        for label in ("glioma", "notumor", "glioma", "notumor"):
            path = next(images)
            scan = ScanFactory(
                case=case, image=ContentFile(path.read_bytes(), name="scan.jpg"), status=Scan.Status.DONE
            )
            prediction = PredictionFactory(scan=scan, model_version=model_version, label="glioma")
            ReviewFactory(prediction=prediction, reviewer=owner, label=label)
        cases[name] = case
    return cases


def consented_arrays(cases):
    arrays = {"glioma": [], "notumor": []}
    for case in cases:
        for scan in case.scans.order_by("pk"):
            label = scan.predictions.get().reviews.get().label
            with scan.image.open("rb") as fh:
                arrays[label].append(preprocess(fh)[..., 0].astype(np.float64))
    return {label: np.stack(stack) for label, stack in arrays.items()}


def test_statistics_use_only_cases_with_analytics_consent(reviewed_cases):
    dataset = import_reviewed_scans("reviewed").dataset
    assert dataset.images.count() == 12  # every reviewed scan is registered; use decides
    stats = compute_dataset_stats(dataset.pk)

    assert stats.data["image_count"] == 8
    assert stats.data["class_counts"] == {"glioma": 4, "notumor": 4}
    direct = consented_arrays([reviewed_cases["granted"], reviewed_cases["to_withdraw"]])
    for label, stack in direct.items():
        np.testing.assert_allclose(
            shown_grey(stats.files[f"mean-{label}.png"]), stack.mean(axis=0), atol=GREY_LEVEL
        )
    pending_scans = {f"scan/{pk}" for pk in reviewed_cases["pending"].scans.values_list("pk", flat=True)}
    for sample in stats.data["montages"].values():
        assert sample["count"] == 4
        assert not pending_scans & set(sample["images"])
    assert set(stats.data["scan_ids"]).isdisjoint(
        reviewed_cases["pending"].scans.values_list("pk", flat=True)
    )


def test_field_performance_counts_only_cases_with_consent(reviewed_cases, model_version):
    (version,) = field_performance(model_version)["versions"]
    # Two consented cases, four reviews each; the model said glioma every time.
    assert (version["reviews"], version["agreed"]) == (8, 4)
    # Rows: the clinician's label; columns: the model's.
    assert (
        version["matrix"][version["reviewed_labels"].index("notumor")][
            version["predicted_labels"].index("glioma")
        ]
        == 4
    )


def test_withdrawal_hides_cached_statistics_and_queues_a_recompute(
    reviewed_cases, steward, client_for, monkeypatch, django_capture_on_commit_callbacks
):
    dataset = import_reviewed_scans("reviewed").dataset
    stats = compute_dataset_stats(dataset.pk)
    client = client_for(steward)
    page = reverse("analytics:dataset", args=[dataset.pk])
    montage = reverse("analytics:dataset_file", args=[dataset.pk, "montage-glioma.png"])
    assert client.get(montage).status_code == 200
    assert b"Average and variability per class" in client.get(page).content

    Consent.record(reviewed_cases["to_withdraw"], Consent.Scope.ANALYTICS, Consent.State.WITHDRAWN, steward)
    queued = []
    monkeypatch.setattr(tasks.compute_dataset_stats, "delay", lambda pk: queued.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(page)

    assert response.status_code == 200
    assert b"Average and variability per class" not in response.content
    assert b"being computed" in response.content
    assert queued == [dataset.pk]
    assert client.get(montage).status_code == 404
    assert field_performance()["versions"][0]["reviews"] == 4

    stats = compute_dataset_stats(dataset.pk)
    assert stats.status == DatasetStats.Status.DONE
    assert stats.data["image_count"] == 4
    assert b"Average and variability per class" in client.get(page).content


def test_montages_of_case_scans_are_for_stewards_only(reviewed_cases, owner, steward, client_for):
    dataset = import_reviewed_scans("reviewed").dataset
    compute_dataset_stats(dataset.pk)
    montage = reverse("analytics:dataset_file", args=[dataset.pk, "montage-glioma.png"])
    mean = reverse("analytics:dataset_file", args=[dataset.pk, "mean-glioma.png"])
    resample = reverse("analytics:dataset_resample", args=[dataset.pk])

    clinician = client_for(owner)
    # All of one team's scans: not even their class means are shown (tests/analytics/test_team_aggregates.py).
    assert clinician.get(mean).status_code == 404
    assert client_for(steward).get(mean).status_code == 200
    assert clinician.get(montage).status_code == 404
    assert clinician.post(resample, {"label": "glioma"}).status_code == 404
    assert montage not in clinician.get(reverse("analytics:dataset", args=[dataset.pk])).content.decode()
    assert client_for(steward).get(montage).status_code == 200
