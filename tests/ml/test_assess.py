"""Per-task calibration and figures after fitting (ml.assess), and the class weighting of the
training loss (ml.fitting), on small arrays: no network is trained here."""

import numpy as np
import pytest

from ml import tasks
from ml.assess import NO_FLAG_THRESHOLD, TaskClasses, calibrate, validation_figures
from ml.data import Dataset
from ml.fitting import MAX_WEIGHT_RATIO, balanced_weights, label_masks
from ml.metrics import multiclass_report


class _FixedLogits:
    """A stand-in for a Keras model: ``predict`` returns the logits it was given."""

    def __init__(self, logits):
        self.logits = np.asarray(logits, dtype=np.float32)

    def predict(self, images, batch_size=None, verbose=0):
        assert len(images) == len(self.logits)
        return self.logits


def _dataset(labels) -> Dataset:
    n = len(labels)
    return Dataset(
        np.zeros((n, 4, 4, 1), np.float32),
        np.array(labels),
        np.array(["s"] * n),
        [str(i) for i in range(n)],
        np.zeros(n, np.uint64),
        [""] * n,
    )


def test_tumour_ct_threshold_comes_from_validation_tumour_recall_on_p_healthy():
    task = TaskClasses.of(tasks.get("tumour-ct"))
    assert task.classes == ("tumour", "healthy") and task.no_finding == 1 and task.flags
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(200, int), np.ones(200, int)]  # 0 tumour, 1 healthy
    margin = np.where(labels == 0, rng.normal(2.5, 1.5, 400), rng.normal(-2.5, 1.5, 400))
    logits = np.stack([margin / 2, -margin / 2], axis=1)
    calibration = calibrate(_FixedLogits(logits), _dataset(labels), task)
    tumour = 1 - calibration.val_probs[:, 1]
    assert 0 < calibration.tumour_threshold <= 0.5
    assert (tumour[labels == 0] >= calibration.tumour_threshold).mean() >= 0.99
    figures = validation_figures(calibration, _dataset(labels), task)
    assert figures["tumour_present"]["tumour_recall"] >= 0.99
    assert "healthy" in task.threshold_rule() and "0.99" in task.threshold_rule()


def test_dementia_staging_has_no_tumour_threshold_and_reports_grades_not_tumour_figures():
    task = TaskClasses.of(tasks.get("dementia-mri"))
    assert not task.flags and task.classes[task.no_finding] == "NonDemented"
    labels = np.array([0, 1, 2, 3] * 25)
    logits = np.eye(4)[labels] * 3 + np.random.default_rng(1).normal(0, 1, (100, 4))
    calibration = calibrate(_FixedLogits(logits), _dataset(labels), task)
    assert calibration.tumour_threshold == NO_FLAG_THRESHOLD
    assert "not used" in task.threshold_rule()
    figures = validation_figures(calibration, _dataset(labels), task)
    assert set(figures["per_class"]) == set(task.classes)
    assert "tumour_present" not in figures and len(figures["confusion_matrix"]) == 4
    report = multiclass_report(
        calibration.val_probs, labels, 0.5, task.classes, task.no_finding, finding=False
    )
    assert "tumour_recall" not in report and report["labels"] == list(task.classes)
    assert 0 <= report["macro_f1"] <= 1 and "ModerateDemented" in report["roc_auc"]


def test_class_weights_balance_the_classes_up_to_a_cap():
    labels = np.array([0] * 2000 + [1] * 1400 + [2] * 560 + [3] * 40)
    weights = balanced_weights(labels)
    per_class = [weights[labels == c][0] for c in range(4)]
    totals = [weights[labels == c].sum() for c in range(3)]
    assert totals == pytest.approx([totals[0]] * 3, rel=1e-5)  # uncapped classes weigh the same
    assert per_class[3] == pytest.approx(MAX_WEIGHT_RATIO * per_class[0])  # the 40 are capped


def test_label_masks_follow_the_tasks_class_count_and_no_finding_class():
    masks = label_masks(np.array([0, 1, 4]), n_classes=2, no_finding=1)
    assert masks.tolist() == [[1, 0], [0, 1], [1, 0]]  # 4: a tumour of unknown type
