"""Register a reference dataset: per image its label, content hash, size and mode, without decoding pixels."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image

from ml.labels import index_folder

from .models import DatasetImage, ReferenceDataset

BATCH = 500


@dataclass
class ImportResult:
    dataset: ReferenceDataset
    total: int
    added: int
    changed: int
    removed: int


def read_image_facts(fh) -> dict:
    """Hash, size, mode and byte count of an open binary file; Pillow reads only the header."""
    data = fh.read()
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        mode = image.mode
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": width,
        "height": height,
        "mode": mode,
        "file_size": len(data),
    }


def import_folder(
    path: Path | str, name: str, progress: Callable[[int, int], None] | None = None
) -> ImportResult:
    """Create or refresh the dataset ``name`` from a folder of class folders (ml.labels aliases).

    Idempotent: the same folder gives the same rows; changed files are updated, vanished
    files removed.
    """
    root = Path(path).resolve()
    items = index_folder(root)
    dataset, _ = ReferenceDataset.objects.get_or_create(
        name=name, defaults={"kind": ReferenceDataset.Kind.FOLDER, "root": str(root)}
    )
    if dataset.kind != ReferenceDataset.Kind.FOLDER:
        raise ValueError(f"dataset {name!r} holds reviewed scans, not a folder")
    rows = []
    for done, item in enumerate(items, start=1):
        with open(item.path, "rb") as fh:
            facts = read_image_facts(fh)
        rows.append(
            DatasetImage(
                dataset=dataset, relpath=item.path.relative_to(root).as_posix(), label=item.label, **facts
            )
        )
        if progress:
            progress(done, len(items))
    return _replace_rows(dataset, rows, root=str(root))


def import_reviewed_scans(name: str, progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Create or refresh ``name`` from case scans labelled by their latest clinician review.

    Every reviewed scan is registered; consent is checked each time the images are used, so
    a withdrawal takes effect without re-importing.
    """
    from cases.models import Scan
    from inference.models import Review
    from ml.labels import CLASSES

    dataset, _ = ReferenceDataset.objects.get_or_create(
        name=name, defaults={"kind": ReferenceDataset.Kind.REVIEWED_SCANS}
    )
    if dataset.kind != ReferenceDataset.Kind.REVIEWED_SCANS:
        raise ValueError(f"dataset {name!r} is a folder dataset")
    latest_label = {}
    # A picture the gate refused as not a brain MRI carries no diagnostic label, whatever a
    # review recorded before that rule said.
    reviews = (
        Review.objects.filter(
            label__in=CLASSES,
            prediction__scan__erased_at__isnull=True,
            prediction__scan__retracted_at__isnull=True,
        )
        .exclude(prediction__scan__outcome=Scan.Outcome.WRONG_MODALITY)
        .select_related("prediction__scan")
    )
    for review in reviews.order_by("created_at", "id"):
        latest_label[review.prediction.scan] = review.label
    rows = []
    for done, (scan, label) in enumerate(latest_label.items(), start=1):
        with default_storage.open(scan.image.name, "rb") as fh:
            facts = read_image_facts(fh)
        rows.append(DatasetImage(dataset=dataset, relpath=f"scan/{scan.pk}", scan=scan, label=label, **facts))
        if progress:
            progress(done, len(latest_label))
    return _replace_rows(dataset, rows, root="")


def _replace_rows(dataset: ReferenceDataset, rows: list[DatasetImage], root: str) -> ImportResult:
    fields = ["label", "sha256", "width", "height", "mode", "file_size", "scan"]
    existing = {
        relpath: facts
        for relpath, *facts in DatasetImage.objects.filter(dataset=dataset).values_list("relpath", *fields)
    }
    new_paths = {row.relpath for row in rows}
    added = sum(1 for row in rows if row.relpath not in existing)
    changed = sum(
        1
        for row in rows
        if row.relpath in existing
        and existing[row.relpath] != [getattr(row, f if f != "scan" else "scan_id") for f in fields]
    )
    with transaction.atomic():
        for start in range(0, len(rows), BATCH):
            DatasetImage.objects.bulk_create(
                rows[start : start + BATCH],
                update_conflicts=True,
                unique_fields=["dataset", "relpath"],
                update_fields=fields,
            )
        gone = [relpath for relpath in existing if relpath not in new_paths]
        for start in range(0, len(gone), BATCH):
            DatasetImage.objects.filter(dataset=dataset, relpath__in=gone[start : start + BATCH]).delete()
        ReferenceDataset.objects.filter(pk=dataset.pk).update(root=root, imported_at=timezone.now())
    dataset.refresh_from_db()
    return ImportResult(dataset=dataset, total=len(rows), added=added, changed=changed, removed=len(gone))
