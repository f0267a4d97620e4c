"""Metrics and thresholds of a classifier's calibrated probabilities, through scikit-learn
(no TensorFlow). The dicts they return are what model cards and ``ml.evaluate`` report."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as sk

from ml.calibration import calibrated_probs, fit_temperature
from ml.data import UNKNOWN_CODE, Dataset
from ml.labels import CLASSES, NOTUMOR

NOTUMOR_INDEX = CLASSES.index(NOTUMOR)

__all__ = [
    "NOTUMOR_INDEX",
    "binary_report",
    "calibrated_probs",
    "choose_refer_threshold",
    "choose_threshold",
    "expected_calibration_error",
    "fit_temperature",
    "multiclass_report",
    "per_source_metrics",
    "roc_curve",
]


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple[float, list]:
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece, diagram = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            gap = abs(correct[inside].mean() - conf[inside].mean())
            ece += inside.mean() * gap
            diagram.append(
                {
                    "bin_low": round(float(lo), 4),
                    "bin_high": round(float(hi), 4),
                    "count": int(inside.sum()),
                    "confidence": round(float(conf[inside].mean()), 4),
                    "accuracy": round(float(correct[inside].mean()), 4),
                }
            )
    return float(ece), diagram


def roc_curve(scores: np.ndarray, positives: np.ndarray, max_points: int = 60) -> dict:
    """The ROC curve thinned to at most ``max_points`` points, and its area. Tied scores are
    one threshold (one point), so their order in the input changes nothing. With only one
    class present the area is undefined and reported as 0.0 (the card stays plain JSON)."""
    positives = np.asarray(positives).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if positives.all() or not positives.any():
        fpr = np.linspace(0.0, 1.0, len(scores) + 1) if not positives.any() else np.zeros(len(scores) + 1)
        tpr = np.zeros(len(scores) + 1) if not positives.any() else np.linspace(0.0, 1.0, len(scores) + 1)
        auc = 0.0
    else:
        fpr, tpr, _ = sk.roc_curve(positives, scores, drop_intermediate=False)
        auc = float(sk.roc_auc_score(positives, scores))
    keep = np.unique(np.linspace(0, len(tpr) - 1, min(max_points, len(tpr))).round().astype(int))
    return {
        "fpr": [round(float(v), 4) for v in fpr[keep]],
        "tpr": [round(float(v), 4) for v in tpr[keep]],
        "auc": round(auc, 4),
    }


def binary_report(tumour_prob: np.ndarray, is_tumour: np.ndarray, threshold: float) -> dict:
    """Tumour-present figures at ``threshold``; a figure whose denominator is 0 is None."""
    pred = np.asarray(tumour_prob) >= threshold
    is_tumour = np.asarray(is_tumour).astype(bool)
    (tn, fp), (fn, tp) = sk.confusion_matrix(is_tumour, pred, labels=[False, True]).tolist()
    # Precision, recall and F1 of each side: the tumours' recall is the sensitivity, the
    # healthy slices' recall the specificity.
    precision, recall, f1, _ = sk.precision_recall_fscore_support(
        is_tumour, pred, labels=[True, False], zero_division=np.nan
    )
    return {
        "n": int(len(pred)),
        "threshold": round(float(threshold), 4),
        "accuracy": round(float(sk.accuracy_score(is_tumour, pred)), 4) if len(pred) else float("nan"),
        "f1": _r(f1[0]),
        "tumour_recall": _r(recall[0]),
        "tumour_specificity": _r(recall[1]),
        "tumour_precision": _r(precision[0]),
        "counts": {"tp": tp, "fn": fn, "tn": tn, "fp": fp},
    }


def _r(v):
    return None if v is None or np.isnan(v) else round(float(v), 4)


def multiclass_report(
    probs: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    names: tuple[str, ...] = CLASSES,
    no_finding: int = NOTUMOR_INDEX,
    finding: bool = True,
) -> dict:
    """Metrics on a labelled set of the classes ``names``; ``threshold`` is the cut-off on
    1 - p(no finding) that suspects a tumour, reported where ``finding`` (a task whose
    classes raise a flag). A class's precision, recall or F1 whose denominator is 0 counts as 0."""
    pred = probs.argmax(axis=1)
    classes = list(range(len(names)))
    cm = sk.confusion_matrix(labels, pred, labels=classes)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        labels, pred, labels=classes, zero_division=0.0
    )
    per_class = {
        name: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    ece, diagram = expected_calibration_error(probs, labels)
    roc = {name: roc_curve(probs[:, i], labels == i) for i, name in enumerate(names)}
    report = {
        "n": int(len(labels)),
        "labels": list(names),
        "accuracy": round(float(sk.accuracy_score(labels, pred)), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }
    if finding:
        tumour_prob = 1.0 - probs[:, no_finding]
        is_tumour = labels != no_finding
        binary = binary_report(tumour_prob, is_tumour, threshold)
        roc["tumour_present"] = roc_curve(tumour_prob, is_tumour)
        report |= {
            "tumour_recall": binary["tumour_recall"],
            "tumour_specificity": binary["tumour_specificity"],
            "tumour_present": binary,
        }
    return report | {
        "roc_auc": {name: curve["auc"] for name, curve in roc.items()},
        "roc_curves": roc,
        "ece": round(ece, 4),
        "reliability": diagram,
    }


def per_source_metrics(
    ds: Dataset,
    probs: np.ndarray,
    threshold: float,
    names: tuple[str, ...] = CLASSES,
    no_finding: int = NOTUMOR_INDEX,
    finding: bool = True,
) -> dict:
    """Metrics per source collection: all classes where labels are typed, and (where
    ``finding``) tumour-present."""
    out = {}
    for source in sorted(set(ds.sources)):
        sel = ds.sources == source
        labels = ds.labels[sel]
        typed = labels < UNKNOWN_CODE
        entry = {"n": int(sel.sum())}
        if typed.all() and len(set(labels)) > 1:
            entry.update(multiclass_report(probs[sel], labels, threshold, names, no_finding, finding))
            entry.pop("roc_curves")
            entry.pop("reliability")
        if finding:
            tumour = 1 - probs[sel][:, no_finding]
            entry["tumour_present"] = binary_report(tumour, labels != no_finding, threshold)
        out[source] = entry
    return out


def choose_threshold(tumour_prob: np.ndarray, is_tumour: np.ndarray, min_recall: float = 0.99) -> float:
    """Highest cut-off on 1 - p(no finding), at most 0.5, that keeps validation tumour
    recall >= min_recall."""
    scores = np.sort(tumour_prob[is_tumour.astype(bool)])
    if scores.size == 0:
        return 0.5
    allowed_misses = int(np.floor((1 - min_recall) * scores.size))
    cut = scores[allowed_misses]  # at most ``allowed_misses`` tumours fall below it
    return float(min(0.5, cut))


def choose_refer_threshold(probs: np.ndarray, labels: np.ndarray, target_accuracy: float = 0.99) -> float:
    """Lowest calibrated top-probability above which validation accuracy >= target."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    for t in np.arange(0.40, 0.951, 0.01):
        kept = conf >= t
        if kept.sum() and correct[kept].mean() >= target_accuracy:
            return round(float(t), 2)
    return 0.95


def per_subject_report(subjects: np.ndarray, probs: np.ndarray, labels: np.ndarray, *report) -> dict:
    """``ml.metrics.multiclass_report`` over subjects instead of slices: each held-out subject's
    answer is the mean of its slices' calibrated probabilities, as a series verdict reads a
    whole series. ``subjects``: each slice's subject id (``ml.subjects``: found on the whole
    collection, since a split alone lacks the neighbouring slices the numbering is checked by).
    ``report``: the task's names, no-finding index and flag (as for slices)."""
    names, rows = np.unique(np.asarray(subjects), return_inverse=True)
    mean = np.zeros((len(names), probs.shape[1]))
    np.add.at(mean, rows, probs)
    mean /= np.bincount(rows, minlength=len(names))[:, None]
    truth = np.array([np.bincount(labels[rows == i]).argmax() for i in range(len(names))])
    out = multiclass_report(mean, truth, 0.5, *report)
    out["n_subjects"] = len(names)
    out["slices_per_subject"] = round(len(subjects) / max(len(names), 1), 1)
    return out
