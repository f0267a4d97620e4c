"""Measure the burned-in text check (cases.burnedin) on folders of real scans: the share it would
hold and what it costs per picture (p50/p95 ms). Tunes the thresholds; not a test.
"""

import json
import random
import statistics
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from PIL import Image

from cases import burnedin
from cases.raster import pixels_only

DATASETS = Path(settings.BASE_DIR).parent / "shared" / "datasets"
# brain-ct: CT slices, many with the hospital's and patient's name burnt in (should be held);
# the MRI folders carry no overlay text (should pass: at most 1% held).
DEFAULT_FOLDERS = ["brain-ct/train", "brain-tumor-mri/Training", "br35h", "alzheimer-mri/train", "lgg-flair"]
SUFFIXES = {".jpg", ".jpeg", ".png"}


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(folder: Path, sample: int, seed: int) -> dict:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        raise CommandError(f"No JPEG/PNG files under {folder}.")
    chosen = random.Random(seed).sample(files, min(sample, len(files)))
    held, unavailable, milliseconds = 0, 0, []
    for path in chosen:
        with Image.open(path) as image:
            result = burnedin.check(pixels_only(image))  # the pixels an upload stores
        held += result.held
        unavailable += result.words < 0
        milliseconds.append(result.seconds * 1000)
    return {
        "folder": str(folder),
        "files": len(files),
        "checked": len(chosen),
        "held": held,
        "held_share": held / len(chosen),
        "unavailable": unavailable,
        "p50_ms": round(statistics.median(milliseconds), 1),
        "p95_ms": round(percentile(milliseconds, 0.95), 1),
    }


class Command(BaseCommand):
    help = "Share of pictures the burned-in text check holds, per folder, and its cost per picture."

    def add_arguments(self, parser):
        parser.add_argument(
            "--folder",
            action="append",
            help=f"a folder of pictures (repeatable); default: {', '.join(DEFAULT_FOLDERS)} under {DATASETS}",
        )
        parser.add_argument("--sample", type=int, default=300, help="random pictures per folder")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", dest="json_path", help="also write the figures to this file")

    def handle(self, *args, folder=None, sample, seed, json_path=None, **options):
        folders = [Path(f) for f in folder] if folder else [DATASETS / name for name in DEFAULT_FOLDERS]
        missing = [str(f) for f in folders if not f.is_dir()]
        if missing:
            raise CommandError(f"Not a folder: {', '.join(missing)}")
        rows = []
        for path in folders:
            row = measure(path, sample, seed)
            rows.append(row)
            self.stdout.write(
                f"{row['folder']}: held {row['held']}/{row['checked']} ({row['held_share']:.1%}), "
                f"unavailable {row['unavailable']}, p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms"
            )
        if json_path:
            Path(json_path).write_text(_dumps(rows))


def _dumps(rows):
    return json.dumps({"thresholds": _thresholds(), "folders": rows}, indent=2) + "\n"


def _thresholds():
    names = [
        "TARGET_SIDE",
        "MAX_UPSCALE",
        "MIN_UPSCALE",
        "PADDING",
        "MIN_CONFIDENCE",
        "MIN_CHARACTERS",
        "MAX_WORD_HEIGHT",
        "MIN_WORDS",
        "LONG_WORD_CHARACTERS",
        "LONG_WORD_CONFIDENCE",
    ]
    return {name.lower(): getattr(burnedin, name) for name in names}
