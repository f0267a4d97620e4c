"""What ``ml.train`` chooses per task and writes down: each task's description, early-stopping
figure and duplicate grouping, the split of one run, and the card of a freshly trained model."""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import tasks
from ml.assess import Calibration, HeldOutFigures, TaskClasses, validation_figures
from ml.card import MODEL_FILE, Card, ModelInput, sha256_file
from ml.data import Dataset
from ml.dedup import NEAR_DUPLICATE_BITS
from ml.metrics import per_source_metrics
from ml.preprocess import PREPROCESS_VERSION

DESCRIPTIONS = {
    tasks.TUMOUR_MRI: "Brain MRI slice classifier: glioma, meningioma, pituitary tumour or no tumour.",
    tasks.DEMENTIA_MRI: (
        "Brain MRI slice classifier: dementia stage (non-demented, very mild, mild or moderate dementia)."
    ),
    tasks.TUMOUR_CT: "Brain CT slice classifier: tumour or healthy.",
}
# Early stopping's figure per task: dementia staging is judged on macro-F1 (its smallest
# class is 1% of the slices, and the loss barely moves when that class is missed).
MONITOR = {tasks.DEMENTIA_MRI: ("val_macro_f1", "max")}
# How images are grouped before splitting: (linkage, bits) of near-duplicate grouping
# (ml.dedup), or ("subject", 0): one group per subject, recovered from alzheimer-mri's file
# numbering (ml.subjects; a near-duplicate split let other slices of one brain into test).
GROUPING = {tasks.DEMENTIA_MRI: ("subject", 0)}
# The augmentation of each task (ml.augment.PROFILES): "scanners" (the default) imitates other
# scanners and sequences; "registered" is mild, for slices registered to one template; "ct"
# keeps the geometry and windowing but not the MRI-only inversion, bias field and stripping.
AUGMENTATION = {tasks.DEMENTIA_MRI: "registered", tasks.TUMOUR_CT: "ct"}
# Every profile's name, for ``ml.train --augmentation`` (ml.augment imports TensorFlow).
AUGMENTATION_PROFILES = ("scanners", "registered", "ct")
# (train, val, test) shares of the groups. By subject, a tenth of alzheimer-mri is 20 people:
# 15% gives each held-out split about 30.
SPLIT_FRACTIONS = {tasks.DEMENTIA_MRI: (0.7, 0.15, 0.15)}


def _library_versions() -> dict:
    from importlib.metadata import version

    import keras
    import PIL
    import sklearn
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "ai-edge-litert": version("ai-edge-litert"),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "scikit-learn": sklearn.__version__,
    }


@dataclass
class Splits:
    """The images of one run, split by duplicate group."""

    full: Dataset
    split: dict[str, np.ndarray]  # indices into ``full`` per split name
    duplicates: dict[str, int]
    train: Dataset
    val: Dataset
    test: Dataset
    healthy_sources: list[str]  # the --healthy collections, reported per source only


def grouping(task: TaskClasses) -> tuple[str, int]:
    return GROUPING.get(task.name, ("single", NEAR_DUPLICATE_BITS))


def augmentation(task: TaskClasses) -> str:
    return AUGMENTATION.get(task.name, "scanners")


def split_fractions(task: TaskClasses) -> tuple[float, float, float]:
    return SPLIT_FRACTIONS.get(task.name, (0.8, 0.1, 0.1))


def grouping_text(task: TaskClasses) -> str:
    linkage, bits = grouping(task)
    if linkage == "subject":
        return "one group per subject, recovered from the file numbering (ml.subjects)"
    return f"{linkage} linkage, perceptual hashes within {bits} bits"


def build_card(
    args,
    task: TaskClasses,
    out: Path,
    model,
    parent: Card | None,
    history,
    data: Splits,
    calibration: Calibration,
    figures: HeldOutFigures,
    seconds: float,
) -> Card:
    """The card of the model just saved in ``out``, without the export and the gate (those steps add them)."""
    from ml.modality import CHECKS_ROOT, default_check_dir

    hist = {k: [round(float(v), 5) for v in vals] for k, vals in history.history.items()}
    full, split, threshold = data.full, data.split, calibration.tumour_threshold
    labels = [*task.classes, *(["tumour_unknown_type"] if task.name == tasks.TUMOUR_MRI else [])]
    names = (task.classes, task.no_finding, task.flags)
    return Card(
        task=args.task,
        name=args.name or out.parent.name,
        version=out.name,
        description=DESCRIPTIONS[task.name],
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        model_file=MODEL_FILE,
        sha256=sha256_file(out / MODEL_FILE),
        classes=tuple(task.classes),
        no_finding_class=task.classes[task.no_finding],
        input=ModelInput(height=args.size, width=args.size),
        preprocessing_version=PREPROCESS_VERSION,
        temperature=round(calibration.temperature, 4),
        tumour_threshold=round(threshold, 4),
        tumour_threshold_rule=task.threshold_rule(),
        refer_threshold=calibration.refer_threshold,
        refer_threshold_rule="lowest calibrated top probability with validation accuracy >= 0.99 above it",
        parameters=int(model.count_params()),
        metrics={
            "split": "internal test (duplicate-group aware), class-labelled images of the --data collections",
            **figures.metrics,
            "ece_before_calibration": figures.ece_before_calibration,
        },
        metrics_by_source=per_source_metrics(data.test, figures.probs, threshold, *names),
        validation=validation_figures(calibration, data.val, task),
        baselines=figures.baselines,
        history=hist,
        training={
            "data": [str(d) for d in args.data],
            "healthy_data": [str(d) for d in args.healthy],
            "healthy_limit": args.healthy_limit,
            "consistent_with": [str(d) for d in args.consistent_with],
            "input_size": args.size,
            "class_weights": "balanced (inverse frequency), capped at 10x the most common class's",
            "early_stopping": MONITOR.get(task.name, ("val_loss", "min"))[0],
            "dataset_fingerprint": full.fingerprint(),
            "duplicates": data.duplicates,
            "duplicate_grouping": grouping_text(task),
            "split_fractions": list(split_fractions(task)),
            "split_sizes": {k: int(len(v)) for k, v in split.items()},
            "label_counts": {
                name: {lbl: int((full.subset(idx).labels == code).sum()) for code, lbl in enumerate(labels)}
                for name, idx in split.items()
            },
            # A resumed run's history holds the epochs after the checkpoint only.
            "epochs_run": history.resumed_after + len(hist.get("loss", [])),
            "resumed_after_epoch": history.resumed_after,
            "initialised_from": (
                {
                    "version": parent.version,
                    "epochs_run": parent.training["epochs_run"],
                    "seconds": parent.training["seconds"],
                }
                if parent
                else None
            ),
            "epochs_max": args.epochs,
            "batch_size": args.batch,
            "learning_rate": args.lr,
            "augment_strength": args.augment_strength,
            "augmentation": getattr(args, "augmentation", None) or augmentation(task),
            "seed": args.seed,
            "seconds": round(seconds, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        },
        libraries=_library_versions(),
        modality=tasks.get(task.name).modality,
        modality_check=str(default_check_dir().relative_to(CHECKS_ROOT.parent)),
    )
