"""Warm analytics pages only read the cache: a handful of queries and no computation.

The 300 ms page budget itself is measured by `manage.py bench_analytics` (part of
`make bench`), not by a timed test: a shared CI machine makes wall-clock asserts flaky.
"""

import pytest
from django.urls import reverse

from analytics.importer import import_folder
from analytics.stats import compute_dataset_stats
from cases.models import Consent
from tests.factories import CaseFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db

MAX_QUERIES = 12


def test_warm_pages_only_read_the_cache(
    small_folder, model_version, client_for, steward, owner, team, monkeypatch, django_assert_max_num_queries
):
    dataset = import_folder(small_folder, "small").dataset
    compute_dataset_stats(dataset.pk)
    case = CaseFactory(team=team, created_by=owner)
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    for label in ("glioma", "notumor", "pituitary") * 10:
        prediction = PredictionFactory(
            scan=ScanFactory(case=case), model_version=model_version, label="glioma"
        )
        ReviewFactory(prediction=prediction, reviewer=owner, label=label)
    client = client_for(owner)
    urls = [
        reverse("analytics:index"),
        reverse("analytics:dataset", args=[dataset.pk]),
        reverse("analytics:dataset_file", args=[dataset.pk, "montage-glioma.png"]),
        reverse("analytics:model", args=[model_version.pk]),
        reverse("analytics:field"),
    ]
    for url in urls:
        assert client.get(url).status_code == 200  # warm: templates compiled, cache read once

    def no_computation(*args, **kwargs):
        raise AssertionError("a warm page recomputed statistics")

    monkeypatch.setattr("analytics.stats._compute", no_computation)
    monkeypatch.setattr("analytics.stats.build_montage", no_computation)
    for url in urls:
        with django_assert_max_num_queries(MAX_QUERIES):
            assert client.get(url).status_code == 200, url
