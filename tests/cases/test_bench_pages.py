"""manage.py bench_pages: builds a case of classified scans and times its pages (the timing
itself is the benchmark's business; here only that it measures the right pages)."""

import pytest

from cases.management.commands.bench_pages import Command, slices
from cases.models import Scan

pytestmark = pytest.mark.django_db


def test_synthetic_slices_stand_in_without_the_shared_dataset(tmp_path):
    grey = slices(tmp_path / "absent", 3)
    assert len(grey) == 3 and all(image.shape == (512, 512) and image.max() > 0 for image in grey)


def test_measures_the_case_page_its_fragment_and_the_viewer(tmp_path):
    report = Command()._measure(slices(tmp_path / "absent", 4), repeats=2)
    assert set(report["pages"]) == {"case page", "scans fragment", "viewer"}
    for figures in report["pages"].values():
        assert figures["p95_ms"] >= figures["p50_ms"] > 0 and figures["queries"] > 0
    scans = Scan.objects.filter(status=Scan.Status.DONE, outcome=Scan.Outcome.CLASSIFIED)
    assert scans.count() == 4
    assert all(scan.predictions.get().explanation for scan in scans)
