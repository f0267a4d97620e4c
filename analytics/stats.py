"""Compute a dataset's statistics once (class mean/std images, differences, distributions,
duplicate groups, montages) and cache them: image files in Django storage, figures in DatasetStats."""

from __future__ import annotations

import io
import logging
import math
import random
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageOps

from ml.preprocess import SIZE, preprocess

from .consent import usable_images
from .models import DatasetImage, DatasetStats, ReferenceDataset

logger = logging.getLogger(__name__)

MONTAGE_SAMPLE = 16
MONTAGE_TILE = 128
TOP_SIZES = 20
LISTED_DUPLICATE_GROUPS = 25


def open_image(image: DatasetImage):
    """A binary file object for a dataset image: from its folder, or from storage for a case scan."""
    if image.scan_id is not None:
        return default_storage.open(image.scan.image.name, "rb")
    return open(Path(image.dataset.root) / image.relpath, "rb")


def class_order(labels) -> list[str]:
    from ml.labels import CLASSES

    known = [label for label in CLASSES if label in labels]
    return known + sorted(set(labels) - set(known))


def compute_dataset_stats(dataset_id: int) -> DatasetStats | None:
    """Recompute and cache every statistic of the dataset; returns the stats row (None if gone)."""
    dataset = ReferenceDataset.objects.filter(pk=dataset_id).first()
    if dataset is None:
        return None
    stats, _ = DatasetStats.objects.get_or_create(dataset=dataset)
    DatasetStats.objects.filter(pk=stats.pk).update(status=DatasetStats.Status.RUNNING, error="")
    started = time.monotonic()
    try:
        data, new_files = _compute(dataset)
    except Exception as error:
        logger.exception("Statistics of dataset %s failed", dataset)
        DatasetStats.objects.filter(pk=stats.pk).update(
            status=DatasetStats.Status.FAILED, error=str(error)[:500]
        )
        raise
    with transaction.atomic():
        # A montage resample may be swapping files at the same moment: one writer at a time.
        stats = DatasetStats.objects.select_for_update().get(pk=stats.pk)
        old_files = set(stats.files.values())
        stats.data = data
        stats.status = DatasetStats.Status.DONE
        stats.computed_at = timezone.now()
        stats.seconds = round(time.monotonic() - started, 2)
        stats.error = ""
        stats.save()
    _delete_files(old_files - set(new_files.values()))
    return stats


def _compute(dataset: ReferenceDataset) -> tuple[dict, dict]:
    images = list(usable_images(dataset).select_related("dataset", "scan__case").order_by("label", "relpath"))
    labels = class_order({image.label for image in images})
    folder = f"analytics/datasets/{dataset.pk}/{uuid.uuid4().hex[:12]}"
    files: dict[str, str] = {}

    sums = {label: np.zeros((SIZE, SIZE), dtype=np.float64) for label in labels}
    squares = {label: np.zeros((SIZE, SIZE), dtype=np.float64) for label in labels}
    counts = Counter()
    phashes = np.zeros(len(images), dtype=np.uint64)
    from ml.dedup import phash

    for index, image in enumerate(images):
        with open_image(image) as fh:
            pixels = preprocess(fh)
        grey = pixels[..., 0].astype(np.float64)
        sums[image.label] += grey
        squares[image.label] += grey * grey
        counts[image.label] += 1
        phashes[index] = phash(pixels)

    means, stds = {}, {}
    for label in labels:
        means[label] = sums[label] / counts[label]
        stds[label] = np.sqrt(np.maximum(squares[label] / counts[label] - means[label] ** 2, 0.0))
    std_scale = max((float(s.max()) for s in stds.values()), default=1.0) or 1.0
    for label in labels:
        files[f"mean-{label}.png"] = _save(folder, f"mean-{label}.png", _grey_png(means[label]))
        files[f"std-{label}.png"] = _save(folder, f"std-{label}.png", _grey_png(stds[label] / std_scale))

    pairs = [(a, b) for a in labels for b in labels if a != b]
    diff_scale = max((float(np.abs(means[a] - means[b]).max()) for a, b in pairs), default=1.0) or 1.0
    for a, b in pairs:
        files[f"diff-{a}-{b}.png"] = _save(
            folder, f"diff-{a}-{b}.png", _diverging_png(means[a] - means[b], diff_scale)
        )

    montages = {}
    for label in labels:
        montage, sample = build_montage(dataset, label, seed=random.SystemRandom().randrange(2**31))
        files[f"montage-{label}.png"] = _save(folder, f"montage-{label}-{uuid.uuid4().hex[:8]}.png", montage)
        montages[label] = sample

    data = {
        "image_count": len(images),
        "classes": labels,
        "class_counts": {label: counts[label] for label in labels},
        "size": SIZE,
        "std_scale": round(std_scale, 6),
        "diff_scale": round(diff_scale, 6),
        "pairs": [list(pair) for pair in pairs],
        "distributions": _distributions(images, labels),
        "duplicates": _duplicates(images, phashes),
        "montages": montages,
        "scan_ids": sorted(image.scan_id for image in images if image.scan_id is not None),
        # Who contributed to each class: analytics.disclosure decides from it which aggregates a
        # clinician may see.
        "class_teams": _class_teams(images),
        "files": files,
    }
    return data, files


def build_montage(dataset: ReferenceDataset, label: str, seed: int, sample_size: int = MONTAGE_SAMPLE):
    """(PNG bytes, sample description) of a random sample of one class, as a square-ish grid."""
    candidates = list(
        usable_images(dataset).filter(label=label).order_by("relpath").values_list("pk", flat=True)
    )
    chosen_ids = random.Random(seed).sample(candidates, min(sample_size, len(candidates)))
    chosen = list(DatasetImage.objects.filter(pk__in=chosen_ids).select_related("dataset", "scan"))
    chosen.sort(key=lambda image: chosen_ids.index(image.pk))
    columns = max(1, math.ceil(math.sqrt(len(chosen))))
    rows = max(1, math.ceil(len(chosen) / columns))
    sheet = Image.new("L", (columns * MONTAGE_TILE, rows * MONTAGE_TILE), 0)
    for index, image in enumerate(chosen):
        with open_image(image) as fh, Image.open(fh) as pil:
            # JPEG: decode at a reduced scale straight away; a thumbnail needs no more.
            pil.draft("L", (MONTAGE_TILE, MONTAGE_TILE))
            tile = ImageOps.pad(pil.convert("L"), (MONTAGE_TILE, MONTAGE_TILE), color=0)
        sheet.paste(tile, ((index % columns) * MONTAGE_TILE, (index // columns) * MONTAGE_TILE))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=False)
    sample = {
        "count": len(chosen),
        "of": len(candidates),
        "columns": columns,
        "seed": seed,
        "images": [image.relpath for image in chosen],
    }
    return buffer.getvalue(), sample


def resample_montage(dataset_id: int, label: str) -> dict:
    """Draw a new random montage for one class and swap it into the cache."""
    dataset = ReferenceDataset.objects.get(pk=dataset_id)
    montage, sample = build_montage(dataset, label, seed=random.SystemRandom().randrange(2**31))
    stats = dataset.stats
    folder = next(iter(stats.files.values()), f"analytics/datasets/{dataset.pk}/x").rsplit("/", 1)[0]
    name = _save(folder, f"montage-{label}-{uuid.uuid4().hex[:8]}.png", montage)
    with transaction.atomic():
        stats = DatasetStats.objects.select_for_update().get(pk=stats.pk)
        if label not in stats.data.get("montages", {}):
            _delete_files({name})
            raise ValueError(f"no montage for class {label!r}")
        old = stats.data["files"].get(f"montage-{label}.png")
        stats.data["files"][f"montage-{label}.png"] = name
        stats.data["montages"][label] = sample
        stats.save(update_fields=["data", "status_changed_at"])
    if old:
        _delete_files({old})
    return sample


def _distributions(images: list[DatasetImage], labels: list[str]) -> dict:
    sizes = Counter(f"{image.width}×{image.height}" for image in images)
    top = sizes.most_common(TOP_SIZES)
    other = sum(sizes.values()) - sum(count for _, count in top)
    modes_by_label: dict[str, Counter] = defaultdict(Counter)
    for image in images:
        modes_by_label[image.mode][image.label] += 1
    return {
        "sizes": [[size, count] for size, count in top] + ([["other", other]] if other else []),
        "distinct_sizes": len(sizes),
        "modes": {
            mode: [by_label[label] for label in labels] for mode, by_label in sorted(modes_by_label.items())
        },
        "file_bytes": {
            label: int(np.median([image.file_size for image in images if image.label == label]))
            for label in labels
        },
    }


def _duplicates(images: list[DatasetImage], phashes: np.ndarray) -> dict:
    from ml.dedup import group_duplicates

    if not images:
        return {"counts": {}, "groups": [], "cross_label_groups": 0}
    group_ids, counts = group_duplicates([image.sha256 for image in images], phashes)
    members = defaultdict(list)
    for image, group in zip(images, group_ids, strict=True):
        members[int(group)].append(image)
    groups = [group for group in members.values() if len(group) > 1]
    groups.sort(key=lambda group: (-len(group), group[0].relpath))
    exact_hashes = Counter(image.sha256 for image in images)
    listed = [
        {
            "size": len(group),
            "labels": sorted({image.label for image in group}),
            "exact": len({image.sha256 for image in group}) == 1,
            "members": [[image.relpath, image.label, exact_hashes[image.sha256] > 1] for image in group[:12]],
        }
        for group in groups[:LISTED_DUPLICATE_GROUPS]
    ]
    cross = sum(1 for group in groups if len({image.label for image in group}) > 1)
    return {"counts": counts, "groups": listed, "cross_label_groups": cross, "duplicate_groups": len(groups)}


def _class_teams(images: list[DatasetImage]) -> dict:
    """{label: {team id (text, as JSON keys are): case scans}}; folder images belong to no team."""
    teams: dict[str, Counter] = defaultdict(Counter)
    for image in images:
        if image.scan_id is not None:
            teams[image.label][str(image.scan.case.team_id)] += 1
    return {label: dict(counts) for label, counts in teams.items()}


def _grey_png(unit: np.ndarray) -> bytes:
    pixels = (np.clip(unit, 0, 1) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((256, 256), Image.Resampling.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def _diverging_png(diff: np.ndarray, scale: float) -> bytes:
    """Blue (negative) - white (0) - red (positive), symmetric around 0 on ``scale``."""
    t = np.clip(diff / scale, -1, 1)[..., None]
    white = np.array([255.0, 255.0, 255.0])
    red = np.array([178.0, 24.0, 43.0])
    blue = np.array([33.0, 102.0, 172.0])
    rgb = np.where(t >= 0, white + (red - white) * t, white + (blue - white) * -t)
    pixels = rgb.round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((256, 256), Image.Resampling.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def _save(folder: str, name: str, content: bytes) -> str:
    return default_storage.save(f"{folder}/{name}", ContentFile(content))


def _delete_files(names) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("Could not delete cached analytics file %s", name)
