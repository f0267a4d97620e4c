"""Time the analytics pages with a warm cache: `make bench` runs it after the pipeline bench."""

import json
import statistics
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from django.urls import reverse

from analytics.models import ReferenceDataset
from inference.models import ModelVersion

BUDGET_MS = 300


class Command(BaseCommand):
    help = "Measure analytics page times (p50/max over repeated requests, cache warm)."

    def add_arguments(self, parser):
        parser.add_argument("--repeats", type=int, default=10)

    def handle(self, *args, repeats, **options):
        user = get_user_model().objects.filter(is_superuser=True, is_active=True).first()
        if user is None:
            raise CommandError("no active superuser: run `make run` once (it creates `admin`).")
        if "testserver" not in settings.ALLOWED_HOSTS:
            settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        client = Client()
        client.force_login(user)
        urls = [reverse("analytics:index"), reverse("analytics:field")]
        urls += [
            reverse("analytics:dataset", args=[pk])
            for pk in ReferenceDataset.objects.values_list("pk", flat=True)
        ]
        urls += [
            reverse("analytics:model", args=[pk]) for pk in ModelVersion.objects.values_list("pk", flat=True)
        ]
        if len(urls) == 2:
            self.stdout.write("No dataset or model registered: only the overview and field pages are timed.")
        results = {}
        for url in urls:
            if client.get(url).status_code != 200:  # warm-up: templates, cache
                raise CommandError(f"{url} did not answer 200")
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            results[url] = {"p50_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
            verdict = "ok" if results[url]["p50_ms"] < BUDGET_MS else f"over the {BUDGET_MS} ms budget"
            self.stdout.write(
                f"{url}: p50 {results[url]['p50_ms']} ms, max {results[url]['max_ms']} ms ({verdict})"
            )
        (settings.VAR_DIR / "bench-analytics.json").write_text(json.dumps(results, indent=1) + "\n")
