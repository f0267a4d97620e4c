"""The series verdict: once the last slice of a series is classified, its slices' tumour
probabilities go through the model's series rule (ml/series.py, shipped beside the card as
series_rule.json) and the answer is stored (SeriesVerdict); then, if PACS_REPORT_BACK is on, the
report back to the PACS is queued (inference/reportback.py). Called by the pipeline at the end
of each scan's classification; it never fails a classification."""

import logging
import math
from pathlib import Path

from django.conf import settings
from django.db import transaction

from cases.models import Scan, Series
from cases.pacs import pacs_configured
from ml import series as series_rules
from ml import tasks

from . import reportback
from .models import ModelVersion, Prediction, SeriesVerdict

logger = logging.getLogger(__name__)

MOST_SUSPICIOUS_KEPT = 5


def after_scan(scan_id):
    """The pipeline's hook: store the verdict of the scan's series if this was its last slice."""
    try:
        series_id = Scan.objects.filter(pk=scan_id).values_list("series_id", flat=True).first()
        if series_id is not None:
            refresh(series_id)
    except Exception:
        # The slice's own answer is recorded already; a verdict is computed again with the next slice.
        logger.exception("Series verdict of scan %s's series not computed", scan_id)


def after_retraction(sender, series_ids, **kwargs):
    """cases.signals.series_changed: a series lost a slice; judge it again over what it has now."""
    for series_id in series_ids:
        try:
            refresh(series_id)
        except Exception:
            # The retraction is committed; the verdict is computed again with the next slice.
            logger.exception("Series verdict of series %s not computed after a retraction", series_id)


def refresh(series_id) -> list[SeriesVerdict]:
    """Compute and store the series' verdict for each model version that answered its slices,
    if none of its slices is still queued, processing or held; [] otherwise."""
    with transaction.atomic():
        # Two last slices finishing at once: the series row serialises them, and the second
        # computes from both answers.
        series = Series.objects.select_for_update().filter(pk=series_id).first()
        if series is None:
            return []
        slices = list(series.slices().values("pk", "status", "series_instance"))
        if not slices or any(row["status"] in Scan.UNANSWERED for row in slices):
            return []
        latest = {}
        predictions = Prediction.objects.filter(scan__in=[row["pk"] for row in slices]).select_related(
            "model_version"
        )
        for prediction in predictions.order_by("scan_id", "created_at", "id"):
            latest[(prediction.model_version_id, prediction.scan_id)] = prediction
        versions = {prediction.model_version for prediction in latest.values()}
        stored = []
        for version in sorted(versions, key=lambda v: v.pk):
            if not tasks.TASKS.get(version.task, tasks.TASKS[tasks.DEFAULT]).flagged:
                continue  # a dementia grade is no tumour question: no series verdict
            answers = [latest.get((version.pk, row["pk"])) for row in slices]
            verdict, changed = _store(series, version, slices, answers)
            stored.append(verdict)
            if changed:
                _queue_report(verdict)
        if stored:
            # The case flag reads the series verdict in place of its slices' (Case.refresh_flag).
            series.case.refresh_flag()
    return stored


def _rule_for(version: ModelVersion):
    """(Rule, "") or (None, why there is none) for this model version."""
    path = Path(settings.ML_MODELS_ROOT) / version.path / series_rules.RULE_FILE
    if not path.is_file():
        return None, f"model {version} ships no series rule; the slices' own answers stand"
    threshold = float((version.card or {}).get("tumour_threshold", 0.5))
    try:
        return series_rules.load_rule(path.parent, threshold), ""
    except (OSError, ValueError) as error:
        logger.error("Series rule of %s unreadable: %s", version, error)
        return None, f"model {version}'s series rule could not be read; the slices' own answers stand"


def _store(series, version, slices, answers) -> tuple[SeriesVerdict, bool]:
    probs = [
        float(p.tumour_probability) if p is not None and p.tumour_probability is not None else math.nan
        for p in answers
    ]
    rule, no_rule_reason = _rule_for(version)
    fields = {
        "has_rule": rule is not None,
        "no_rule_reason": no_rule_reason[:300],
        "rule": rule.as_dict() if rule else {},
        "scan_ids": [row["pk"] for row in slices],
        "slices": len(slices),
        "answered": sum(not math.isnan(p) for p in probs),
    }
    order = series_rules.most_suspicious(probs, MOST_SUSPICIOUS_KEPT)
    fields["most_suspicious"] = [
        {
            "scan": slices[i]["pk"],
            # The scanner's instance number where it gave one, else the position in the series.
            "slice": slices[i]["series_instance"] if slices[i]["series_instance"] is not None else i + 1,
            "probability": round(probs[i], 6),
        }
        for i in order
    ]
    if rule is not None:
        outcome = series_rules.verdict(probs, rule, MOST_SUSPICIOUS_KEPT)
        fields |= {"tumour_suspected": outcome.tumour_suspected, "score": float(outcome.score)}
        fields |= _label(version, answers[order[0]] if order else None, outcome.tumour_suspected)
    else:
        fields |= {"tumour_suspected": None, "score": None, "label": "", "probability": None}
    current = SeriesVerdict.objects.filter(series=series, model_version=version).first()
    judged = ("tumour_suspected", "score", "label", "probability", "scan_ids", "rule")
    changed = current is None or any(getattr(current, key) != fields[key] for key in judged)
    verdict, _ = SeriesVerdict.objects.update_or_create(series=series, model_version=version, defaults=fields)
    return verdict, changed


def _label(version, top, suspected) -> dict:
    """The class the series is reported as, and its probability on the most suspicious slice."""
    no_finding = (version.card or {}).get("no_finding_class", tasks.TASKS[tasks.DEFAULT].no_finding)
    if top is None:
        return {"label": no_finding if not suspected else "", "probability": None}
    probabilities = top.probabilities or {}
    if suspected:
        tumour = {name: p for name, p in probabilities.items() if name != no_finding}
        label = max(tumour, key=tumour.get) if tumour else (top.label or "")
    else:
        label = no_finding
    probability = probabilities.get(label)
    return {"label": label, "probability": None if probability is None else float(probability)}


def _queue_report(verdict):
    """PACS_REPORT_BACK on, a PACS configured and a verdict to report: queue the report, after the
    verdict's transaction commits. Never in the way of classification: a broker outage is logged."""
    if not (settings.PACS_REPORT_BACK and pacs_configured() and verdict.has_rule):
        return
    SeriesVerdict.objects.filter(pk=verdict.pk).update(
        report_state=SeriesVerdict.Report.PENDING, report_reason="", report_attempts=0
    )

    transaction.on_commit(lambda: reportback.enqueue_report(verdict.pk))
