"""Train one task's classifier (ml.tasks) and write a model directory with its card, its LiteRT
export for the worker (``ml.export``) and its out-of-distribution gate.

    python -m ml.train --task dementia-mri --data ../shared/datasets/alzheimer-mri/train \
        --out ml/candidates/dementia-mri/2026.12.01-2

README.md ("Models") has the command of each shipped model.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from ml import card as cards
from ml import cli, tasks
from ml.assess import TaskClasses, calibrate, measure
from ml.card import MODEL_FILE, SPLIT_FILE, Card
from ml.cli import fail, non_negative_int
from ml.data import Dataset, forced_splits, healthy_items, load_items, split_by_group
from ml.fit_gate import OUTLIER_PICTURES, fit_for_model
from ml.fitting import (
    EpochReport,
    load_parent_model,
    make_training_data,
    mask_accuracy,
    parent_split,
    read_parent,
    recalibrate_batch_norm,
)
from ml.labels import index_folder
from ml.preprocess import SIZE
from ml.recipe import (
    AUGMENTATION_PROFILES,
    MONITOR,
    Splits,
    augmentation,
    build_card,
    grouping,
    split_fractions,
)

DEFAULT_CACHE = Path(__file__).resolve().parent.parent / "var" / "ml-cache"
DEFAULT_CHECKPOINTS = DEFAULT_CACHE.parent / "ml-checkpoints"


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
    parent = read_parent(Path(args.init)) if args.init else None
    args.size = input_size(args, parent)
    started = time.time()
    data = prepare_data(args, task, parent)
    model, history = fit(args, data, task, parent)
    train_seconds = time.time() - started
    calibration = calibrate(model, data.val, task)
    figures = measure(model, data.train, data.test, data.healthy_sources, calibration, args.seed, task)
    if grouping(task)[0] == "subject":
        from ml.metrics import per_subject_report
        from ml.subjects import ids_from_strides

        figures.metrics["by_subject"] = per_subject_report(
            ids_from_strides(data.test.paths, data.duplicates["subjects"]),
            figures.probs,
            data.test.labels,
            task.classes,
            task.no_finding,
            task.flags,
        )
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
    if "by_subject" in m:
        s = m["by_subject"]
        print(
            f"per subject ({s['n_subjects']} held-out subjects, mean of their slices): accuracy "
            f"{s['accuracy']:.4f} macro-F1 {s['macro_f1']:.4f}; confusion {s['confusion_matrix']}",
            flush=True,
        )
    return out


def input_size(args, parent: Card | None) -> int:
    """--size, or else the parent's input side for a warm start (--init), or else SIZE."""
    if args.size is not None:
        return args.size
    return parent.size if parent else SIZE


def prepare_data(args, task: TaskClasses, parent: Card | None) -> Splits:
    """The --data images (at most --limit per label) and the --healthy ones, loaded and split
    (consistently with the models of --consistent-with); a warm start takes its parent's split
    (``ml.fitting.parent_split``) and the card's record of how that split was made."""
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
    forced = forced_splits(args.consistent_with)
    if parent:
        split = parent_split(Path(args.init), full)
        check_consistent(split, full, forced)
        dup_counts = {**parent.training["duplicates"], "split_inherited_from": parent.version}
    else:
        split, dup_counts = split_by_group(
            full, fractions=split_fractions(task), seed=args.seed, forced=forced, grouping=grouping(task)
        )
    train_ds, val_ds, test_ds = (full.subset(split[k]) for k in ("train", "val", "test"))
    print(
        f"{len(full)} images, {dup_counts['groups']} "
        f"{'subjects' if 'subjects' in dup_counts else 'duplicate groups'} "
        f"({dup_counts['exact_duplicates']} exact copies, "
        f"{dup_counts['near_duplicate_pairs']} near-duplicate pairs); "
        f"{dup_counts.get('pinned_by_another_model', 0)} in another model's split, "
        f"{dup_counts.get('left_out_for_consistency', 0)} left out for consistency; "
        f"train {len(train_ds)}, val {len(val_ds)}, test {len(test_ds)}",
        flush=True,
    )
    return Splits(full, split, dup_counts, train_ds, val_ds, test_ds, sorted({it.source for it in healthy}))


def check_consistent(split: dict[str, np.ndarray], full: Dataset, forced: dict[str, str]) -> None:
    """Refuse a split that puts an image on another side than a --consistent-with model did."""
    for name, idx in split.items():
        for i in idx:
            if forced.get(full.sha256[i], name) != name:
                raise ValueError(
                    f"{full.paths[i]} is {name} in the --init model's split but "
                    f"{forced[full.sha256[i]]} in a --consistent-with model's"
                )


def fit(args, data: Splits, task: TaskClasses, parent: Card | None):
    """(model, Keras history): the network fitted on the training split
    (or continued from --init), BatchNorm statistics re-estimated on clean images. Each epoch
    is checkpointed under --resume's folder; a run started again with the same folder goes
    on from its last finished epoch."""
    import keras

    from ml.model import build_model, masked_nll

    n_classes = len(task.classes)
    tf_train = make_training_data(
        data.train,
        args.batch,
        args.seed,
        args.augment_strength,
        n_classes,
        task.no_finding,
        args.augmentation or augmentation(task),
    )
    rng = np.random.default_rng(args.seed)
    calibration = data.train.images[rng.permutation(len(data.train))[:1024]]
    if args.init:
        model = load_parent_model(Path(args.init), parent)
        print(f"starting from {args.init} ({parent.training['epochs_run']} epochs)", flush=True)
        if parent.size != args.size:
            # Convolutions and global pooling: the same weights read a larger picture.
            resized = build_model(n_classes, args.size)
            resized.set_weights(model.get_weights())
            model = resized
            print(f"input {parent.size} -> {args.size} px, same weights", flush=True)
    else:
        model = build_model(n_classes, args.size)
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
    return model, history


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
    parser.add_argument(
        "--size",
        type=int,
        help=f"input side in pixels, recorded in the card (default: the --init model's, else {SIZE})",
    )
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
        "--augmentation",
        choices=AUGMENTATION_PROFILES,
        help="augmentation profile (ml.augment.PROFILES; default: the task's, ml.recipe.AUGMENTATION)",
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
