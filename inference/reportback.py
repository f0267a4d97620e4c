"""Report a series verdict back to the PACS: the Secondary Capture of the most suspicious slice's
explanation and the Comprehensive SR of the verdict (inference/pacsreport.py), both in the
de-identified study BrainScan holds, sent with cases.pacs.Pacs.store. The state of each attempt
(sent, or failed and why) is kept on the SeriesVerdict for the case page.

``report_series(series_id)`` sends once and returns the stored SOP Instance UIDs; the Celery task
``inference.tasks.report_series`` retries a transient failure a bounded number of times.
"""

import io
import logging
import random

import numpy as np
import pydicom
from celery import current_app
from django.conf import settings
from django.utils import timezone
from PIL import Image

from cases.dicompreview import preview_png
from cases.models import Scan
from cases.pacs import Pacs, PacsUnavailable

from .models import ModelVersion, Prediction, SeriesVerdict
from .pacsreport import AiResult, explanation_capture, verdict_report

logger = logging.getLogger(__name__)

TASK_NAME = "inference.tasks.report_series"


class NothingToReport(ValueError):
    """The series has no verdict a report can carry (none yet, no series rule, no DICOM slices)."""


def report_series(series_id) -> list[str]:
    """Send the series' current verdict to the configured PACS once; the SOP Instance UIDs it
    stored. A PacsUnavailable is recorded on the verdict and raised on; NothingToReport when
    there is no verdict to send."""
    verdict = current_verdict(series_id)
    if verdict is None:
        raise NothingToReport(f"series {series_id} has no series verdict to report")
    return send(verdict.pk, final=True)


def current_verdict(series_id) -> SeriesVerdict | None:
    """The verdict a report carries (SeriesVerdict.current_for), if it has a series rule."""
    verdict = SeriesVerdict.current_for(series_id)
    return verdict if verdict is not None and verdict.has_rule else None


def send(verdict_id, *, final=True, attempts_allowed=1) -> list[str]:
    """One attempt to send the verdict ``verdict_id``, recorded: SENT with the stored UIDs, or the
    failure's reason, FAILED when ``final`` (or not worth retrying), else still PENDING."""
    verdict = SeriesVerdict.objects.select_related("model_version", "series").filter(pk=verdict_id).first()
    if verdict is None:
        return []
    attempt = verdict.report_attempts + 1
    try:
        objects = build_objects(verdict)
        stored = Pacs().store(objects)
    except NothingToReport as error:
        _record(verdict_id, SeriesVerdict.Report.FAILED, str(error), attempt)
        raise
    except PacsUnavailable as error:
        gives_up = final or not error.transient
        state = SeriesVerdict.Report.FAILED if gives_up else SeriesVerdict.Report.PENDING
        then = "" if gives_up else "; trying again"
        of = f" of {attempts_allowed}" if attempts_allowed > 1 else ""
        _record(verdict_id, state, f"attempt {attempt}{of}: {error}{then}", attempt)
        logger.warning("Report of series verdict %s, attempt %s: %s", verdict_id, attempt, error)
        raise
    _record(verdict_id, SeriesVerdict.Report.SENT, "", attempt, stored)
    logger.info("Series verdict %s reported to the PACS: %d object(s)", verdict_id, len(stored))
    return stored


def attempts_made(verdict_id) -> tuple[int, str | None]:
    """(attempts recorded on the verdict, its report state); (0, None) when it is gone. The
    attempts bound a report, since Celery's retry count starts again at 0 when the broker
    redelivers a message whose worker died; a SENT one is not sent again (a recomputed verdict
    starts PENDING, with its own message)."""
    row = SeriesVerdict.objects.filter(pk=verdict_id).values_list("report_attempts", "report_state").first()
    return (row[0] or 0, row[1]) if row else (0, None)


def give_up(verdict_id, attempts, attempts_allowed):
    """A report redelivered with its attempts spent (its worker lost each time): FAILED with the
    reason, and not sent again. One already settled keeps its state and reason: SENT (the PACS
    took it), or FAILED by its last attempt (the PACS's answer says more than "gave up")."""
    reason = f"attempt {attempts} of {attempts_allowed} was the last: gave up (its worker was lost)"
    # Conditional on the attempts as read: another delivery may have recorded one meanwhile.
    settled = [SeriesVerdict.Report.SENT, SeriesVerdict.Report.FAILED]
    SeriesVerdict.objects.filter(pk=verdict_id, report_attempts=attempts).exclude(
        report_state__in=settled
    ).update(report_state=SeriesVerdict.Report.FAILED, report_reason=reason[:500])
    logger.warning("Report of series verdict %s given up: %s", verdict_id, reason)


def retry_not_queued(verdict_id, error, attempts):
    """The broker did not take the report's next attempt: failed with the reason, not left
    "sending" with nothing to send it."""
    reason = f"attempt {attempts}: {error}; the task queue is unavailable, so it was not tried again"
    _record(verdict_id, SeriesVerdict.Report.FAILED, reason, attempts)


def _record(verdict_id, state, reason, attempts, uids=None):
    fields = {"report_state": state, "report_reason": reason[:500], "report_attempts": attempts}
    if state == SeriesVerdict.Report.SENT:
        fields |= {"reported_at": timezone.now(), "report_uids": list(uids or [])}
    SeriesVerdict.objects.filter(pk=verdict_id).update(**fields)


def build_objects(verdict) -> list[pydicom.Dataset]:
    """[Secondary Capture of the most suspicious slice's explanation (when it has one), SR]."""
    if not verdict.has_rule or not verdict.label or verdict.probability is None:
        raise NothingToReport(f"series {verdict.series_id} has no verdict to report ({verdict.headline})")
    scans = {scan.pk: scan for scan in Scan.objects.filter(pk__in=verdict.scan_ids, retracted_at=None)}
    files, datasets = {}, {}
    for scan_id in verdict.scan_ids:
        scan = scans.get(scan_id)
        if scan is not None and scan.modality == Scan.Modality.DICOM and scan.image:
            with scan.image.open("rb") as stored:
                files[scan_id] = stored.read()
            datasets[scan_id] = pydicom.dcmread(io.BytesIO(files[scan_id]))
    if not datasets:
        raise NothingToReport(f"series {verdict.series_id} has no DICOM slice left to refer to")
    result = ai_result(verdict)
    objects = []
    top = next((item["scan"] for item in verdict.most_suspicious if item["scan"] in datasets), None)
    explanations = Prediction.objects.filter(scan_id=top, model_version=verdict.model_version)
    explanation = explanations.exclude(explanation="").first() if top is not None else None
    if explanation is not None and explanation.explanation:
        with explanation.explanation.open("rb") as stored:
            heatmap = stored.read()
        objects.append(explanation_capture(datasets[top], overlay(files[top], heatmap), result))
    objects.append(verdict_report(list(datasets.values()), result))
    return objects


def ai_result(verdict) -> AiResult:
    version: ModelVersion = verdict.model_version
    return AiResult(
        label=verdict.label,
        probability=float(verdict.probability),
        model_name=version.name,
        model_version=version.version,
    )


def overlay(dicom_file: bytes, heatmap_png: bytes) -> np.ndarray:
    """The explanation heatmap (RGBA, smaller than the slice) drawn over the slice as the case
    page shows it: an RGB uint8 array of the slice's size."""
    with Image.open(io.BytesIO(preview_png(dicom_file))) as grey:
        base = grey.convert("RGBA")
    with Image.open(io.BytesIO(heatmap_png)) as heat:
        heat = heat.convert("RGBA").resize(base.size, Image.Resampling.BILINEAR)
    return np.asarray(Image.alpha_composite(base, heat).convert("RGB"), dtype=np.uint8)


def backoff_s(retries: int) -> float:
    """Seconds before the next attempt: doubling from PACS_REPORT_BACKOFF_S, capped, with jitter."""
    delay = min(settings.PACS_REPORT_MAX_BACKOFF_S, settings.PACS_REPORT_BACKOFF_S * 2**retries)
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security


def enqueue_report(verdict_id) -> bool:
    """Queue the report task (by name: the tasks module imports this one); False, recorded, when
    the broker does not take it."""
    try:
        current_app.send_task(TASK_NAME, args=[verdict_id])
    except Exception as error:
        logger.exception("Could not queue the report of series verdict %s", verdict_id)
        _record(verdict_id, SeriesVerdict.Report.FAILED, f"could not be queued ({type(error).__name__})", 0)
        return False
    return True
