"""Export de-identified, clinician-labelled scans for model training: only cases that consent.

The consent check happens in the query (``cases_with_consent(TRAINING)``), so a withdrawal
takes effect on the next export; erased and held scans are never exported.
"""

import csv
import io
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Prefetch
from PIL import Image

from ml.preprocess import decode

from . import anonymise
from .models import AuditEvent, Consent, Review, Scan, cases_with_consent


@dataclass(frozen=True)
class TrainingExport:
    folder: Path
    files: int
    scan_ids: list[int]


def training_scans():
    """Scans of consenting cases that have a stored image and a clinician's label."""
    reviews = Review.objects.order_by("created_at", "id")
    return (
        Scan.objects.filter(case__in=cases_with_consent(Consent.Scope.TRAINING), erased_at=None)
        .exclude(image="")
        .exclude(status=Scan.Status.HELD)
        .filter(predictions__reviews__isnull=False)
        .distinct()
        .prefetch_related(Prefetch("predictions__reviews", queryset=reviews))
        .order_by("id")
    )


def _label(scan) -> str:
    reviews = [review for prediction in scan.predictions.all() for review in prediction.reviews.all()]
    return max(reviews, key=lambda review: (review.created_at, review.id)).label


def _png(scan) -> bytes:
    with scan.image.open("rb") as stored:
        data = stored.read()
    if scan.modality == Scan.Modality.DICOM:
        return anonymise.preview_png(data)
    return data  # already a PNG re-encoded from pixels alone


def export_training_images(folder: Path, user) -> TrainingExport:
    """Write <label>/<random name>.png and manifest.csv into ``folder``; audit the export.

    File names are random: neither the case pseudonym nor the scan id leaves the system,
    so the exported set cannot be joined back to cases without the audit trail.
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(["file", "label", "sha256"])
    scan_ids = []
    for scan in training_scans():
        label = _label(scan)
        name = f"{label}/{secrets.token_hex(8)}.png"
        (folder / label).mkdir(exist_ok=True)
        png = _png(scan)
        # Re-encode from pixels alone (greyscale), whatever the stored format.
        grey, _ = decode(png)
        Image.fromarray(grey).save(folder / name, format="PNG")
        writer.writerow([name, label, scan.sha256])
        scan_ids.append(scan.pk)
    (folder / "manifest.csv").write_text(manifest.getvalue())
    AuditEvent.record(user, AuditEvent.Verb.TRAINING_EXPORT, files=len(scan_ids), scans=scan_ids)
    return TrainingExport(folder=folder, files=len(scan_ids), scan_ids=scan_ids)
