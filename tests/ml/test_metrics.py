"""Figures of calibrated probabilities (ml.metrics, ml.calibration)."""

import numpy as np
import pytest

from ml.calibration import calibrated_probs
from ml.labels import CLASSES
from ml.metrics import binary_report, multiclass_report, roc_curve


@pytest.mark.parametrize("positives", [[True, False], [False, True]])
def test_tied_scores_give_the_same_auc_whatever_their_order(positives):
    curve = roc_curve(np.array([0.5, 0.5]), np.array(positives))
    assert curve == {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "auc": 0.5}


def test_a_perfect_ranking_has_auc_one_and_the_reverse_zero():
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    assert roc_curve(scores, np.array([1, 1, 0, 0]))["auc"] == 1.0
    assert roc_curve(scores, np.array([0, 0, 1, 1]))["auc"] == 0.0


def test_binary_report_counts_and_leaves_undefined_figures_out():
    report = binary_report(np.array([0.9, 0.6, 0.2, 0.1]), np.array([1, 0, 1, 0]), threshold=0.5)
    assert report["counts"] == {"tp": 1, "fn": 1, "tn": 1, "fp": 1}
    assert (report["tumour_recall"], report["tumour_specificity"], report["f1"]) == (0.5, 0.5, 0.5)
    no_tumours = binary_report(np.array([0.1, 0.2]), np.array([0, 0]), threshold=0.5)
    assert no_tumours["tumour_recall"] is None and no_tumours["tumour_specificity"] == 1.0


def test_multiclass_report_per_class_figures_and_confusion_matrix():
    labels = np.array([0, 0, 1, 2, 3, 3])
    predicted = np.array([0, 1, 1, 2, 3, 0])
    probs = np.full((len(labels), len(CLASSES)), 0.1)
    probs[np.arange(len(labels)), predicted] = 0.7
    report = multiclass_report(probs, labels, threshold=0.5)
    assert report["confusion_matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]]
    assert report["per_class"][CLASSES[0]] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["accuracy"] == round(4 / 6, 4)


def test_temperature_softens_without_changing_the_ranking():
    logits = np.array([[2.0, 0.5, -1.0, 0.0]])
    sharp, soft = calibrated_probs(logits), calibrated_probs(logits, temperature=2.0)
    assert np.isclose(sharp.sum(), 1.0) and np.isclose(soft.sum(), 1.0)
    assert soft.max() < sharp.max() and soft.argmax() == sharp.argmax()
