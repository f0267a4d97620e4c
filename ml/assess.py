"""What ``ml.train`` decides and measures after fitting, per task: the temperature and the
thresholds (from validation only) and the test-split figures of the calibrated model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.calibration import calibrated_probs, fit_temperature
from ml.data import UNKNOWN_CODE, Dataset
from ml.metrics import binary_report, choose_refer_threshold, choose_threshold, multiclass_report

# Validation tumour recall the tumour threshold keeps, per task that raises a flag. Tumour CT's
# target is 0.98 on held-out images: 0.99 on validation leaves a margin for the test split.
MIN_TUMOUR_RECALL = {"tumour-mri": 0.99, "tumour-ct": 0.99}
# A task whose classes raise no flag (dementia staging) records 0.5 as its cut-off: the
# product reads its grade (the most likely class), never a tumour suspicion.
NO_FLAG_THRESHOLD = 0.5


@dataclass(frozen=True)
class TaskClasses:
    """The part of an ``ml.tasks.Task`` the fitted model's figures need."""

    name: str
    classes: tuple[str, ...]
    no_finding: int  # index into classes
    flags: bool  # does a prediction raise the case's flag (a tumour task)?

    @classmethod
    def of(cls, task) -> TaskClasses:
        return cls(task.name, task.classes, task.classes.index(task.no_finding), bool(task.flagged))

    def threshold_rule(self) -> str:
        if not self.flags:
            return "not used: this task raises no flag; its answer is the most likely class"
        recall = MIN_TUMOUR_RECALL[self.name]
        return (
            f"highest cut-off on 1 - p({self.classes[self.no_finding]}) with validation tumour "
            f"recall >= {recall} (at most 0.5)"
        )


@dataclass
class Calibration:
    """Temperature and thresholds, from validation only."""

    temperature: float
    tumour_threshold: float
    refer_threshold: float
    val_probs: np.ndarray


@dataclass
class HeldOutFigures:
    metrics: dict
    ece_before_calibration: float
    probs: np.ndarray  # calibrated, for every test image
    baselines: dict


def calibrate(model, val: Dataset, task: TaskClasses) -> Calibration:
    """Temperature (on typed images), tumour threshold and refer threshold from validation."""
    val_logits = model.predict(val.images, batch_size=128, verbose=0)
    typed = val.labels < UNKNOWN_CODE
    temperature = fit_temperature(val_logits[typed], val.labels[typed])
    val_probs = calibrated_probs(val_logits, temperature)
    threshold = NO_FLAG_THRESHOLD
    if task.flags:
        threshold = choose_threshold(
            1 - val_probs[:, task.no_finding], val.labels != task.no_finding, MIN_TUMOUR_RECALL[task.name]
        )
    refer = choose_refer_threshold(val_probs[typed], val.labels[typed])
    return Calibration(temperature, threshold, refer, val_probs)


def validation_figures(calibration: Calibration, val: Dataset, task: TaskClasses) -> dict:
    """Validation figures at the chosen thresholds (what the choice was made on)."""
    typed = val.labels < UNKNOWN_CODE
    out = {
        "n": int(len(val)),
        "accuracy": round(float((calibration.val_probs[typed].argmax(1) == val.labels[typed]).mean()), 4),
    }
    if task.flags:
        out["tumour_present"] = binary_report(
            1 - calibration.val_probs[:, task.no_finding],
            val.labels != task.no_finding,
            calibration.tumour_threshold,
        )
    else:
        report = multiclass_report(
            calibration.val_probs[typed],
            val.labels[typed],
            NO_FLAG_THRESHOLD,
            task.classes,
            task.no_finding,
            False,
        )
        out |= {k: report[k] for k in ("macro_f1", "per_class", "confusion_matrix")}
    return out


def measure(
    model,
    train: Dataset,
    test: Dataset,
    healthy_sources: list[str],
    calibration: Calibration,
    seed: int,
    task,
) -> HeldOutFigures:
    """Test-split figures of the calibrated model, and the baselines on the same images."""
    from ml.baselines import run_baselines

    test_logits = model.predict(test.images, batch_size=128, verbose=0)
    test_probs = calibrated_probs(test_logits, calibration.temperature)
    # The headline figures: typed images of the class-folder collections. Healthy-only
    # collections (--healthy) are reported per source, not mixed into them.
    test_typed = (test.labels < UNKNOWN_CODE) & ~np.isin(test.sources, healthy_sources)
    report = (task.classes, task.no_finding, task.flags)
    threshold = calibration.tumour_threshold
    test_metrics = multiclass_report(test_probs[test_typed], test.labels[test_typed], threshold, *report)
    uncalibrated_ece = multiclass_report(
        calibrated_probs(test_logits[test_typed]), test.labels[test_typed], threshold, *report
    )["ece"]
    tr_typed = (train.labels < UNKNOWN_CODE) & ~np.isin(train.sources, healthy_sources)
    baselines = run_baselines(
        train.images[tr_typed], train.labels[tr_typed], test.images[test_typed], test.labels[test_typed], seed
    )
    return HeldOutFigures(test_metrics, uncalibrated_ece, test_probs, baselines)
