"""Time the reading pages of a 50-scan case, server side: `make bench` runs it.

A case of classified scans (real MRI slices from ../shared when present, each with a prediction,
an explanation and, for every other one, a review) is built in a temporary database with media
in a temporary folder; the case page, its scans fragment and the viewer page are requested
through Django's test client after a warm-up, and their p50/p95 render times reported.
"""

import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from PIL import Image

from cases.models import Case, Membership, Scan, Team
from inference.management.commands.bench_pipeline import DEFAULT_DATASET, percentile
from inference.models import ModelVersion, Prediction, Review
from ml.serve import heatmap_png

BUDGET_MS = 300
CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


def slices(dataset: Path, count: int) -> list[np.ndarray]:
    """``count`` greyscale slices: real ones spread over the classes, else synthetic heads."""
    files = sorted(dataset.glob("*/*.jpg")) if dataset.is_dir() else []
    if files:
        step = max(1, len(files) // count)
        return [np.asarray(Image.open(path).convert("L")) for path in files[::step][:count]]
    yy, xx = np.mgrid[:512, :512]
    head = (((yy - 256) / 220) ** 2 + ((xx - 256) / 180) ** 2 < 1).astype(np.uint8)
    return [(head * (90 + index % 60)).astype(np.uint8) for index in range(count)]


def png(grey: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Measure the server render time (p50/p95) of a 50-scan case page, its fragment and the viewer."

    def add_arguments(self, parser):
        parser.add_argument("--scans", type=int, default=50)
        parser.add_argument("--repeats", type=int, default=20)
        parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
        parser.add_argument("--output", type=Path, default=Path(settings.VAR_DIR) / "bench-pages.json")

    def handle(self, *args, scans, repeats, dataset, output, **options):
        if scans < 1 or repeats < 2:
            raise CommandError("--scans must be positive and --repeats at least 2.")
        grey = slices(dataset, scans)
        media = tempfile.mkdtemp(prefix="brainscan-bench-pages-")
        old_name = connection.settings_dict["NAME"]
        hosts = [*settings.ALLOWED_HOSTS, "testserver"]
        try:
            with override_settings(MEDIA_ROOT=media, ALLOWED_HOSTS=hosts):
                # Nothing of the bench touches the real database or media.
                connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
                try:
                    report = self._measure(grey, repeats)
                finally:
                    connection.creation.destroy_test_db(old_name, verbosity=0)
        finally:
            shutil.rmtree(media, ignore_errors=True)
        report = {"scans": scans, "images": "real" if dataset.is_dir() else "synthetic", **report}
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=1) + "\n")
        for name, figures in report["pages"].items():
            verdict = "ok" if figures["p95_ms"] < BUDGET_MS else f"OVER the {BUDGET_MS} ms target"
            self.stdout.write(
                f"{name:>15}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
                f"{figures['queries']} queries, {figures['kib']} KiB ({verdict})"
            )
        self.stdout.write(f"Written to {output}.")

    def _build_case(self, grey):
        user = get_user_model().objects.create_user("bench-clinician", password=None)
        team = Team.objects.create(name="Bench team")
        Membership.objects.create(user=user, team=team)
        case = Case.objects.create(team=team, created_by=user, notes="bench_pages")
        model = ModelVersion.objects.create(
            name="bench", version="1", task="brain-tumour", path="bench/1", classes=CLASSES
        )
        yy, xx = np.mgrid[:7, :7]
        for index, image in enumerate(grey):
            scan = Scan(
                case=case,
                sha256=f"{index:064x}",
                width=image.shape[1],
                height=image.shape[0],
                uploaded_by=user,
                status=Scan.Status.DONE,
                outcome=Scan.Outcome.CLASSIFIED,
            )
            scan.image.save("scan.png", ContentFile(png(image)), save=False)
            scan.save()
            probabilities = dict(zip(CLASSES, np.roll([0.85, 0.07, 0.05, 0.03], index % 4), strict=True))
            label = max(probabilities, key=probabilities.get)
            prediction = Prediction.objects.create(
                scan=scan,
                model_version=model,
                label=label,
                confidence=0.85,
                probabilities={k: float(v) for k, v in probabilities.items()},
                tumour_probability=1 - float(probabilities["notumor"]),
                tumour_suspected=label != "notumor",
                latency_ms=100.0,
            )
            cam = np.exp(-((yy - 1 - index % 5) ** 2 + (xx - 3) ** 2) / 2.0)
            prediction.explanation.save("heat.png", ContentFile(heatmap_png(cam, image)))
            if index % 2:
                Review.objects.create(
                    prediction=prediction, reviewer=user, decision=Review.Decision.CONFIRMED, label=label
                )
        case.refresh_flag()
        return user, case

    def _measure(self, grey, repeats):
        user, case = self._build_case(grey)
        middle = case.scans.order_by("uploaded_at", "id")[len(grey) // 2]
        client = Client()
        client.force_login(user)
        pages = {
            "case page": reverse("cases:detail", args=[case.pk]),
            "scans fragment": reverse("cases:scans_fragment", args=[case.pk]),
            "viewer": reverse("cases:viewer", args=[middle.pk]),
        }
        results = {}
        for name, url in pages.items():
            response = client.get(url)  # warm-up: templates, caches
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}")
            with CaptureQueriesContext(connection) as captured:
                client.get(url)
            # Counted now: every request starts by emptying the connection's query log.
            queries = len(captured)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            results[name] = {
                "url": url,
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(percentile(times, 0.95), 1),
                "queries": queries,
                "kib": round(len(response.content) / 1024, 1),
            }
        return {"database": connection.vendor, "repeats": repeats, "pages": results}
