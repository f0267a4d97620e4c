"""Export de-identified, clinician-labelled scans for model training: only cases that consent.

The consent check happens in the query (``cases_with_consent(TRAINING)``), so a withdrawal
takes effect on the next export. Only scans the gate admitted as a brain MRI slice are
exported; every other labelled scan is counted under the reason it was left out (SKIPPED).
"""

import csv
import io
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Prefetch, Q
from PIL import Image

from ml.preprocess import decode

from .dicompreview import preview_png
from .models import AuditEvent, Consent, Scan, cases_with_consent, reviews

# Why a labelled scan of a consenting case is not exported; the first reason that applies counts.
SKIPPED = [
    ("retracted", Q(retracted_at__isnull=False)),
    ("image erased", Q(erased_at__isnull=False) | Q(image="")),
    ("not yet checked for burned-in text", Q(status=Scan.Status.CHECKING)),
    ("held for a steward's check", Q(status=Scan.Status.HELD)),
    # A picture the gate refused is no brain MRI, whatever label it was given: never training data.
    ("refused as not a brain MRI", Q(outcome=Scan.Outcome.WRONG_MODALITY)),
    ("never checked as a brain MRI", ~Q(outcome__in=[Scan.Outcome.CLASSIFIED, Scan.Outcome.UNCERTAIN])),
]


@dataclass(frozen=True)
class TrainingExport:
    folder: Path
    files: int
    scan_ids: list[int]
    # Reason -> how many labelled scans of consenting cases were left out for it.
    skipped: dict[str, int]


def labelled_scans():
    """Scans of consenting cases that carry a clinician's label."""
    return (
        Scan.objects.filter(case__in=cases_with_consent(Consent.Scope.TRAINING))
        .filter(predictions__reviews__isnull=False)
        .distinct()
    )


def training_scans():
    """Labelled scans of consenting cases that none of the SKIPPED reasons applies to."""
    oldest_first = reviews().order_by("created_at", "id")
    scans = labelled_scans()
    for _, condition in SKIPPED:
        scans = scans.exclude(condition)
    return scans.prefetch_related(Prefetch("predictions__reviews", queryset=oldest_first)).order_by("id")


def skipped_scans() -> dict[str, int]:
    """How many labelled scans of consenting cases each SKIPPED reason leaves out (none: absent)."""
    counts, remaining = {}, labelled_scans()
    for reason, condition in SKIPPED:
        count = remaining.filter(condition).count()
        if count:
            counts[reason] = count
        remaining = remaining.exclude(condition)
    return counts


def _label(scan) -> str:
    reviews = [review for prediction in scan.predictions.all() for review in prediction.reviews.all()]
    return max(reviews, key=lambda review: (review.created_at, review.id)).label


def _png(scan) -> bytes:
    with scan.image.open("rb") as stored:
        data = stored.read()
    if scan.modality == Scan.Modality.DICOM:
        return preview_png(data)
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
    skipped = skipped_scans()
    AuditEvent.record(
        user, AuditEvent.Verb.TRAINING_EXPORT, files=len(scan_ids), scans=scan_ids, skipped=skipped
    )
    return TrainingExport(folder=folder, files=len(scan_ids), scan_ids=scan_ids, skipped=skipped)
