"""Train one task's classifier (ml.tasks) and write a model directory with its card, its LiteRT
export for the worker (``ml.export``) and its out-of-distribution gate.

    python -m ml.train --task dementia-mri --data ../shared/datasets/alzheimer-mri/train \
        --out ml/models/dementia-mri/2026.12.01

README.md ("Models") has the command of each shipped model.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import card as cards
from ml import cli, tasks
from ml.assess import Calibration, HeldOutFigures, TaskClasses, calibrate, measure, validation_figures
from ml.card import MODEL_FILE, SPLIT_FILE, Card, ModelInput, sha256_file
from ml.cli import fail, non_negative_int
from ml.data import Dataset, forced_splits, healthy_items, load_items, split_by_group
from ml.dedup import NEAR_DUPLICATE_BITS
from ml.fit_gate import OUTLIER_PICTURES, fit_for_model
from ml.fitting import EpochReport, load_parent, make_training_data, mask_accuracy, recalibrate_batch_norm
from ml.labels import index_folder
from ml.metrics import per_source_metrics
from ml.preprocess import PREPROCESS_VERSION, SIZE

DEFAULT_CACHE = Path(__file__).resolve().parent.parent / "var" / "ml-cache"
DEFAULT_CHECKPOINTS = DEFAULT_CACHE.parent / "ml-checkpoints"
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
# How near-duplicates are grouped before splitting (ml.dedup): (linkage, bits).
GROUPING = {tasks.DEMENTIA_MRI: ("complete", 10)}


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


def train(args) -> Path:
    """The recipe: prepare the data, fit, calibrate, measure, write the model directory."""
    import keras
    import tensorflow as tf

    # The seed alone does not make a run repeatable: augmentation draws from stateful random
    # ops inside a parallel tf.data map, so which image gets which draw follows thread timing.
    # With op determinism that map runs serially (prefetch still overlaps it with training).
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    task = TaskClasses.of(tasks.get(args.task))
    started = time.time()
    data = prepare_data(args, task)
    model, parent, history = fit(args, data, task)
    train_seconds = time.time() - started
    calibration = calibrate(model, data.val, task)
    figures = measure(model, data.train, data.test, data.healthy_sources, calibration, args.seed, task)
    out = Path(args.out)
    save_model(model, out)
    card = build_card(args, task, out, model, parent, history, data, calibration, figures, train_seconds)
    write_model_dir(out, card, data, args.outlier_pictures)
    m = figures.metrics
    recalls = ", ".join(f"{name} {v['recall']:.3f}" for name, v in m["per_class"].items())
    tumour = (
        f"tumour recall {m['tumour_recall']} specificity {m['tumour_specificity']} " if task.flags else ""
    )
    print(
        f"test accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} recall per class: {recalls}; "
        f"{tumour}ECE {m['ece']:.4f}; confusion {m['confusion_matrix']}; "
        f"T={calibration.temperature:.3f} threshold={calibration.tumour_threshold:.3f} "
        f"refer={calibration.refer_threshold}; {train_seconds / 60:.1f} min -> {out}",
        flush=True,
    )
    return out


def prepare_data(args, task: TaskClasses) -> Splits:
    """The --data images (at most --limit per label) and the --healthy ones, loaded and split
    (consistently with the models of --consistent-with)."""
    items = [item for folder in args.data for item in index_folder(Path(folder), task=task.name)]
    if args.limit:
        rng = np.random.default_rng(args.seed)
        by_label: dict[str, list] = {}
        for item in items:
            by_label.setdefault(item.label, []).append(item)
        items = [it for group in by_label.values() for it in rng.permutation(group)[: args.limit]]
    healthy = healthy_items(
        args.healthy, args.healthy_limit, args.seed, task.classes[task.no_finding], task.name
    )
    items += healthy
    full = load_items(items, cache_dir=args.cache, classes=task.classes, size=args.size)
    split, dup_counts = split_by_group(
        full, seed=args.seed, forced=forced_splits(args.consistent_with), grouping=grouping(task)
    )
    train_ds, val_ds, test_ds = (full.subset(split[k]) for k in ("train", "val", "test"))
    print(
        f"{len(full)} images, {dup_counts['groups']} duplicate groups "
        f"({dup_counts['exact_duplicates']} exact copies, "
        f"{dup_counts['near_duplicate_pairs']} near-duplicate pairs); "
        f"{dup_counts['pinned_by_another_model']} in another model's split, "
        f"{dup_counts['left_out_for_consistency']} left out for consistency; "
        f"train {len(train_ds)}, val {len(val_ds)}, test {len(test_ds)}",
        flush=True,
    )
    return Splits(full, split, dup_counts, train_ds, val_ds, test_ds, sorted({it.source for it in healthy}))


def fit(args, data: Splits, task: TaskClasses):
    """(model, parent card or None, Keras history): the network fitted on the training split
    (or continued from --init), BatchNorm statistics re-estimated on clean images. Each epoch
    is checkpointed under --resume's folder; a run started again with the same folder goes
    on from its last finished epoch."""
    import keras

    from ml.model import build_model, masked_nll

    n_classes = len(task.classes)
    tf_train = make_training_data(
        data.train, args.batch, args.seed, args.augment_strength, n_classes, task.no_finding
    )
    rng = np.random.default_rng(args.seed)
    calibration = data.train.images[rng.permutation(len(data.train))[:1024]]
    if args.init:
        model, parent = load_parent(Path(args.init), data.full, data.split)
        print(f"starting from {args.init} ({parent.training['epochs_run']} epochs)", flush=True)
    else:
        model, parent = build_model(n_classes, args.size), None
    steps = int(np.ceil(len(data.train) / args.batch)) * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=args.lr, warmup_steps=min(300, steps // 10), alpha=0.02
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=masked_nll,
        metrics=[mask_accuracy],
    )
    monitor, mode = MONITOR.get(task.name, ("val_loss", "min"))
    callbacks = [
        EpochReport(data.val, calibration, args.epochs, tasks.get(task.name)),
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=args.patience, restore_best_weights=True
        ),
        keras.callbacks.BackupAndRestore(
            str(checkpoint_dir(args)), save_freq="epoch", delete_checkpoint=True
        ),
    ]
    resumed = finished_epochs(checkpoint_dir(args))
    if resumed:
        print(f"resuming from {checkpoint_dir(args)} after epoch {resumed}", flush=True)
    history = model.fit(tf_train, epochs=args.epochs, callbacks=callbacks, verbose=0)
    history.resumed_after = resumed
    recalibrate_batch_norm(model, data.train.images[rng.permutation(len(data.train))[:4096]])
    return model, parent, history


def grouping(task: TaskClasses) -> tuple[str, int]:
    return GROUPING.get(task.name, ("single", NEAR_DUPLICATE_BITS))


def finished_epochs(folder: Path) -> int:
    """Epochs a checkpoint folder (keras.callbacks.BackupAndRestore's) has finished; 0 if none."""
    import json

    metadata = folder / "training_metadata.json"
    return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0


def checkpoint_dir(args) -> Path:
    return (
        Path(args.resume)
        if args.resume
        else DEFAULT_CHECKPOINTS / Path(args.out).parent.name / Path(args.out).name
    )


def save_model(model, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{MODEL_FILE}.tmp.keras"
    model.save(tmp)
    os.replace(tmp, out / MODEL_FILE)


def write_model_dir(out: Path, card: Card, data: Splits, outlier_pictures: int) -> None:
    """Beside model.keras: the card, the split, the LiteRT export and the gate."""
    from ml.export import export

    card.save(out)
    np.savez_compressed(
        out / SPLIT_FILE, **{k: np.array([data.full.sha256[i] for i in v]) for k, v in data.split.items()}
    )
    # The worker serves the LiteRT export; the gate is fitted on the features it will see.
    export(out)
    fit_for_model(out, data.train.paths, outlier_pictures)


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
            "duplicate_grouping": "{} linkage, perceptual hashes within {} bits".format(*grouping(task)),
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
            "seed": args.seed,
            "seconds": round(seconds, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        },
        libraries=_library_versions(),
        modality=tasks.get(task.name).modality,
        modality_check=str(default_check_dir().relative_to(CHECKS_ROOT.parent)),
    )


def parse_args(argv=None):
    parser = cli.parser("ml.train", __doc__)
    parser.add_argument(
        "--task",
        default=cards.DEFAULT_TASK,
        help=f"the clinical question: {', '.join(tasks.TASKS)} "
        f"(default {cards.DEFAULT_TASK}, the legacy name of tumour-mri)",
    )
    parser.add_argument(
        "--data", action="append", required=True, help="folder of the task's class folders (repeatable)"
    )
    parser.add_argument(
        "--out", required=True, help="model directory to write, e.g. ml/models/brain-tumour/VERSION"
    )
    parser.add_argument(
        "--healthy",
        action="append",
        type=Path,
        default=[],
        help="folder of images without a finding at any depth, all of the task's no-finding class "
        "(repeatable)",
    )
    parser.add_argument(
        "--consistent-with",
        action="append",
        type=Path,
        default=[],
        help="model directory whose split.npz this run keeps: its images stay in their split (repeatable)",
    )
    parser.add_argument("--size", type=int, default=SIZE, help="input side in pixels (the card records it)")
    parser.add_argument(
        "--healthy-limit", type=int, default=0, help="at most N images from each --healthy folder (0: all)"
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument(
        "--augment-strength",
        type=float,
        default=1.0,
        help="scales how often each intensity augmentation fires (0-1; lower to fine-tune with --init)",
    )
    parser.add_argument(
        "--limit", type=int, default=0, help="at most N images per label of --data (quick runs)"
    )
    parser.add_argument(
        "--init", type=Path, default=None, help="model directory to continue from (warm start, same split)"
    )
    parser.add_argument(
        "--outlier-pictures",
        type=non_negative_int,
        default=OUTLIER_PICTURES,
        help="generated non-MRI pictures the out-of-distribution gate is fitted against (ml.outliers)",
    )
    parser.add_argument("--name", default=None)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="preprocessed-array cache folder")
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="checkpoint folder, written every epoch; a run started again with it goes on from its "
        f"last epoch (default {DEFAULT_CHECKPOINTS.relative_to(DEFAULT_CACHE.parent.parent)}/NAME/VERSION)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        tasks.get(args.task)
        train(args)
    except tasks.UnknownTask as exc:
        return fail(exc.args[0])
    except (FileNotFoundError, ValueError, cards.ModelLoadError) as exc:
        return fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
