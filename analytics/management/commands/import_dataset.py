"""manage.py import_dataset PATH --name NAME: register a folder of class folders as a reference dataset."""

import time

from django.core.management.base import BaseCommand, CommandError

from ml.labels import UnknownClassFolder


class ProgressBar:
    """A one-line progress bar on a terminal; a line every 10% when the output is a file or pipe."""

    def __init__(self, stream, label, width=30):
        self.stream, self.label, self.width = stream, label, width
        self.started = time.monotonic()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last_decile = -1

    def __call__(self, done, total):
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate else 0.0
        filled = int(self.width * done / total) if total else self.width
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} "
            f"{rate:.0f}/s, {elapsed:.0f}s elapsed, {eta:.0f}s left"
        )
        if self.tty:
            self.stream.write("\r" + line, ending="\n" if done == total else "")
            self.stream.flush()
        elif total and (decile := done * 10 // total) != self.last_decile:
            self.last_decile = decile
            self.stream.write(line)


class Command(BaseCommand):
    help = "Register a labelled folder of class folders (or reviewed case scans) and compute its statistics."

    def add_arguments(self, parser):
        parser.add_argument(
            "path", nargs="?", help="folder holding one folder per class (glioma, notumor, ...)"
        )
        parser.add_argument("--name", required=True, help="dataset name shown on the analytics pages")
        parser.add_argument(
            "--reviewed-scans",
            action="store_true",
            help="instead of a folder, register case scans labelled by their latest clinician review",
        )
        parser.add_argument(
            "--stats",
            choices=["queue", "now", "skip"],
            default="queue",
            help="queue the statistics for a worker (default), compute them here, or skip",
        )

    def handle(self, *args, path=None, name, reviewed_scans, stats, **options):
        from analytics import importer

        progress = ProgressBar(self.stderr, "Reading")
        started = time.monotonic()
        try:
            if reviewed_scans:
                if path:
                    raise CommandError("give either PATH or --reviewed-scans, not both")
                result = importer.import_reviewed_scans(name, progress=progress)
            else:
                if not path:
                    raise CommandError("PATH is required (or --reviewed-scans)")
                result = importer.import_folder(path, name, progress=progress)
        except (FileNotFoundError, UnknownClassFolder, ValueError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Dataset {result.dataset.name!r}: {result.total} images ({result.added} added, "
                f"{result.changed} changed, {result.removed} removed) in {time.monotonic() - started:.1f}s."
            )
        )
        if stats == "now":
            from analytics.stats import compute_dataset_stats

            computed = compute_dataset_stats(result.dataset.pk)
            self.stdout.write(f"Statistics computed in {computed.seconds:.1f}s.")
        elif stats == "queue":
            from analytics.tasks import enqueue_stats

            enqueue_stats(result.dataset)
            self.stdout.write("Statistics queued for a worker.")
