"""Benchmark the upload-to-result path with a warm worker: latency p50/p95, scans per minute and
the worker's peak memory.

Each image goes through the same code as a web upload (validate, de-identify, read for burnt-in
text, store, enqueue on commit); a real Celery worker (started here on a queue of its own)
classifies it with the active model; the clock stops when the scan's row says done. The upload
checks' cost and the text check's part of it (p50/p95 ms) are reported beside the latency.
"""

import json
import signal
import statistics
import subprocess
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from brainscan.celery import app
from cases.models import Case, Scan, Team
from cases.uploads import clean_upload, store_scans
from inference.benchworker import start_bench_worker
from inference.models import ModelVersion
from inference.registry import sync_registry

DEFAULT_DATASET = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "brain-tumor-mri" / "Training"
# A scan held for a steward (text found in its pixels) is never classified: counted, not waited for.
FINISHED = (Scan.Status.DONE, Scan.Status.FAILED, Scan.Status.HELD)


def percentile(values, fraction):
    ordered = sorted(values)
    index = fraction * (len(ordered) - 1)
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def peak_rss_mb(pid):
    """Peak resident memory (VmHWM) of process ``pid`` or any of its children, in MB; None
    where /proc is not there to read."""
    peaks, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        peaks += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
        pending += [int(child) for child in children]
    return round(max(peaks) / 1024, 1) if peaks else None


class Command(BaseCommand):
    help = "Measure upload-to-result latency (p50/p95) and scans/minute for one warm worker."

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=60)
        parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
        parser.add_argument("--timeout", type=float, default=120.0, help="Seconds to wait for one scan")
        parser.add_argument("--output", type=Path, default=Path(settings.VAR_DIR) / "bench.json")

    def handle(self, *args, images, dataset, timeout, output, **options):
        if images < 1:
            raise CommandError("--images must be positive.")
        files = self._images(dataset, images)
        sync_registry()
        model = ModelVersion.active_for(settings.CLASSIFICATION_TASK)
        if model is None:
            raise CommandError(
                f"No active model for {settings.CLASSIFICATION_TASK}: train one into ml/models/."
            )
        queue = f"brainscan-bench-{uuid.uuid4().hex[:8]}"
        app.conf.task_default_queue = queue
        case = self._bench_case()
        worker = start_bench_worker(queue)
        self.check_ms, self.text_check_ms = [], []  # per upload: all its checks, the OCR part
        try:
            self.stdout.write(f"Model {model}; {len(files)} images from {dataset}; warming up the worker…")
            self._run_one(case, files[0], timeout=600)
            latencies, model_ms = [], []
            for path in files:
                seconds, scan = self._run_one(case, path, timeout)
                latencies.append(seconds)
                prediction = scan.predictions.first()
                if prediction:
                    model_ms.append(prediction.latency_ms)
            held = case.scans.filter(status=Scan.Status.HELD).count()
            throughput_s, failed = self._run_batch(case, files, timeout * len(files))
            worker_rss_mb = peak_rss_mb(worker.pid)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            self._clean_up(case)
        report = {
            "model": str(model),
            "images": len(files),
            "broker": settings.CELERY_BROKER_URL.split("://")[0],
            "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "latency_p50_s": round(statistics.median(latencies), 3),
            "latency_p95_s": round(percentile(latencies, 0.95), 3),
            "latency_max_s": round(max(latencies), 3),
            "model_p50_ms": round(statistics.median(model_ms), 1) if model_ms else None,
            # Inside the latency: validating, de-identifying and reading an upload for burnt-in text.
            "upload_check_p50_ms": round(statistics.median(self.check_ms), 1),
            "text_check_p50_ms": round(statistics.median(self.text_check_ms), 1)
            if self.text_check_ms
            else None,
            "text_check_p95_ms": round(percentile(self.text_check_ms, 0.95), 1)
            if self.text_check_ms
            else None,
            "held_for_text": held,
            "batch_seconds": round(throughput_s, 2),
            "scans_per_minute": round(60 * len(files) / throughput_s, 1),
            "failed": failed,
            # The largest of the worker's processes (the pool child holds the model).
            "worker_peak_rss_mb": worker_rss_mb,
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=1) + "\n")
        for key, value in report.items():
            self.stdout.write(f"  {key:>18}: {value}")
        verdict = "meets" if report["latency_p95_s"] <= 2.0 else "MISSES"
        self.stdout.write(f"p95 {verdict} the 2 s target. Written to {output}.")

    def _images(self, dataset, count):
        classes = sorted(p for p in dataset.glob("*") if p.is_dir()) if dataset.is_dir() else []
        per_class = [sorted(c.glob("*.jpg")) for c in classes]
        if not any(per_class):
            raise CommandError(f"No images under {dataset} (the shared datasets folder).")
        picked = []
        for index in range(count):
            files = per_class[index % len(per_class)]
            picked.append(files[(index // len(per_class)) * 17 % len(files)])
        return picked

    def _bench_case(self):
        user, _ = get_user_model().objects.get_or_create(
            username="bench-runner", defaults={"is_active": False}
        )
        team, _ = Team.objects.get_or_create(name="Benchmark")
        return Case.objects.create(
            team=team, created_by=user, notes="pipeline benchmark (deleted afterwards)"
        )

    def _upload(self, case, paths):
        images = []
        for path in paths:
            started = time.perf_counter()
            images.append(clean_upload(SimpleUploadedFile(path.name, path.read_bytes())))
            self.check_ms.append((time.perf_counter() - started) * 1000)
            text_check = images[-1].report.get("text_check")
            if isinstance(text_check, dict):
                self.text_check_ms.append(text_check["ms"])
        return store_scans(case, case.created_by, images)

    def _run_one(self, case, path, timeout):
        started = time.perf_counter()
        [scan] = self._upload(case, [path])
        while True:
            scan.refresh_from_db(fields=["status"])
            if scan.status in FINISHED:
                return time.perf_counter() - started, scan
            if time.perf_counter() - started > timeout:
                raise CommandError(
                    f"Scan {scan.pk} not finished after {timeout:.0f} s: is the worker running?"
                )
            time.sleep(0.005)

    def _run_batch(self, case, paths, timeout):
        started = time.perf_counter()
        scans = self._upload(case, paths)
        ids = [s.pk for s in scans]
        while Scan.objects.filter(pk__in=ids).exclude(status__in=FINISHED).exists():
            if time.perf_counter() - started > timeout:
                raise CommandError("The batch did not finish in time.")
            time.sleep(0.05)
        failed = Scan.objects.filter(pk__in=ids, status=Scan.Status.FAILED).count()
        return time.perf_counter() - started, failed

    def _clean_up(self, case):
        for scan in case.scans.all():
            for prediction in scan.predictions.all():
                if prediction.explanation:
                    prediction.explanation.delete(save=False)
            scan.image.delete(save=False)
        case.delete()
