"""CSV exports, streamed so a large export never sits in memory: ``csv_response`` builds every
one (the case history here, the audit log in the admin); ``case_rows`` is the case history,
one row per scan. Predictions and reviews are read through the relations inference adds to
Scan (``Scan.predictions``, ``Prediction.reviews``): cases does not import inference.
"""

import csv

from django.db.models import Prefetch
from django.http import StreamingHttpResponse
from django.utils import timezone

from .models import Scan, model_versions, predictions, reviews

FIXED_COLUMNS = [
    "pseudonym",
    "task",
    "scan_id",
    "uploaded_at",
    "status",
    "outcome",
    "model_version",
    "predicted_label",
    "confidence",
    "tumour_suspected",
    "tumour_probability",
]
TAIL_COLUMNS = ["case_flag", "reviewed_label", "reviewer", "reviewed_at"]


class _Echo:
    def write(self, value):
        return value


def export_filename(now=None, what="cases"):
    return f"brainscan-{what}-{(now or timezone.now()):%Y%m%d-%H%M%S}.csv"


def _safe(value):
    # Spreadsheet formula injection: a cell starting with = + - @ would be evaluated.
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(rows, filename: str) -> StreamingHttpResponse:
    """Stream ``rows`` (the header first, then lists of cell values) as a CSV attachment, every
    cell escaped against formula injection."""
    writer = csv.writer(_Echo())
    lines = (writer.writerow([_safe(value) for value in row]) for row in rows)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def probability_classes():
    classes = []
    for version_classes in model_versions().values_list("classes", flat=True):
        for name in version_classes or []:
            if name not in classes:
                classes.append(name)
    return classes


def scans_for_export(cases):
    ordered_reviews = reviews().select_related("reviewer").order_by("created_at", "id")
    scan_predictions = (
        predictions()
        .select_related("model_version")
        .prefetch_related(Prefetch("reviews", queryset=ordered_reviews))
    )
    return (
        Scan.objects.not_retracted()
        .filter(case__in=cases)
        .select_related("case")
        .prefetch_related(Prefetch("predictions", queryset=scan_predictions))
        .order_by("case__created_at", "case_id", "uploaded_at", "id")
    )


def _tumour_answer(scan, prediction):
    """The tumour-present decision, a separate answer from the predicted label (the type): it
    can be true for a notumor label. Empty for a scan that was not classified."""
    # A question without tumour classes (dementia staging) asks no tumour question.
    if prediction is None or scan.outcome == Scan.Outcome.WRONG_MODALITY or not scan.question.flagged:
        return "", ""
    probability = prediction.tumour_probability
    return str(prediction.tumour_suspected).lower(), "" if probability is None else f"{probability:.4f}"


def case_rows(cases):
    """The case history of ``cases`` for ``csv_response``: the header, then one row per scan."""
    classes = probability_classes()
    yield FIXED_COLUMNS + [f"p_{name}" for name in classes] + TAIL_COLUMNS
    for scan in scans_for_export(cases).iterator(chunk_size=500):
        prediction = scan.latest_prediction
        review = prediction.latest_review if prediction else None
        row = [
            scan.case.pseudonym,
            scan.case.task,
            scan.pk,
            scan.uploaded_at.isoformat(),
            scan.status,
            scan.outcome or "",
            str(prediction.model_version) if prediction else "",
            (prediction.label or "") if prediction else "",
            f"{prediction.confidence:.4f}" if prediction else "",
            *_tumour_answer(scan, prediction),
        ]
        probabilities = prediction.probabilities if prediction else {}
        row += [f"{probabilities[name]:.4f}" if name in probabilities else "" for name in classes]
        row += [
            scan.case.flag,
            review.label if review else "",
            review.reviewer.get_username() if review else "",
            review.created_at.isoformat() if review else "",
        ]
        yield row
