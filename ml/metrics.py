"""Metrics, calibration and thresholds, in plain numpy (no TensorFlow)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from ml.labels import CLASSES, NOTUMOR

NOTUMOR_INDEX = CLASSES.index(NOTUMOR)


def calibrated_probs(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising validation NLL (Guo et al., 2017)."""
    logits = np.asarray(logits, dtype=np.float64)

    def nll(log_t):
        lp = log_softmax(logits / np.exp(log_t), axis=-1)
        return -lp[np.arange(len(labels)), labels].mean()

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


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
    order = np.argsort(-scores, kind="stable")
    scores, positives = scores[order], positives[order].astype(bool)
    tps = np.cumsum(positives)
    fps = np.cumsum(~positives)
    p, n = max(tps[-1], 1), max(fps[-1], 1)
    tpr = np.concatenate([[0.0], tps / p])
    fpr = np.concatenate([[0.0], fps / n])
    auc = float(np.trapezoid(tpr, fpr))
    keep = np.unique(np.linspace(0, len(tpr) - 1, min(max_points, len(tpr))).round().astype(int))
    return {
        "fpr": [round(float(v), 4) for v in fpr[keep]],
        "tpr": [round(float(v), 4) for v in tpr[keep]],
        "auc": round(auc, 4),
    }


def binary_report(tumour_prob: np.ndarray, is_tumour: np.ndarray, threshold: float) -> dict:
    pred = tumour_prob >= threshold
    is_tumour = is_tumour.astype(bool)
    tp = int((pred & is_tumour).sum())
    fn = int((~pred & is_tumour).sum())
    tn = int((~pred & ~is_tumour).sum())
    fp = int((pred & ~is_tumour).sum())
    recall = tp / (tp + fn) if tp + fn else None
    specificity = tn / (tn + fp) if tn + fp else None
    precision = tp / (tp + fp) if tp + fp else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {
        "n": int(len(pred)),
        "threshold": round(float(threshold), 4),
        "accuracy": round(float((pred == is_tumour).mean()), 4),
        "f1": _r(f1),
        "tumour_recall": _r(recall),
        "tumour_specificity": _r(specificity),
        "tumour_precision": _r(precision),
        "counts": {"tp": tp, "fn": fn, "tn": tn, "fp": fp},
    }


def _r(v):
    return None if v is None else round(float(v), 4)


def multiclass_report(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Metrics on a 4-class labelled set; ``threshold`` is the tumour-present cut-off."""
    pred = probs.argmax(axis=1)
    k = len(CLASSES)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (labels, pred), 1)
    per_class = {}
    f1s = []
    for i, name in enumerate(CLASSES):
        tp = cm[i, i]
        precision = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        recall = tp / cm[i].sum() if cm[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_class[name] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(cm[i].sum()),
        }
    ece, diagram = expected_calibration_error(probs, labels)
    tumour_prob = 1.0 - probs[:, NOTUMOR_INDEX]
    is_tumour = labels != NOTUMOR_INDEX
    binary = binary_report(tumour_prob, is_tumour, threshold)
    roc = {name: roc_curve(probs[:, i], labels == i) for i, name in enumerate(CLASSES)}
    roc["tumour_present"] = roc_curve(tumour_prob, is_tumour)
    return {
        "n": int(len(labels)),
        "labels": list(CLASSES),
        "accuracy": round(float((pred == labels).mean()), 4),
        "macro_f1": round(float(np.mean(f1s)), 4),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "tumour_recall": binary["tumour_recall"],
        "tumour_specificity": binary["tumour_specificity"],
        "tumour_present": binary,
        "roc_auc": {name: curve["auc"] for name, curve in roc.items()},
        "roc_curves": roc,
        "ece": round(ece, 4),
        "reliability": diagram,
    }


def choose_threshold(tumour_prob: np.ndarray, is_tumour: np.ndarray, min_recall: float = 0.99) -> float:
    """Highest cut-off on 1 - p(notumor) that keeps validation tumour recall >= min_recall."""
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
