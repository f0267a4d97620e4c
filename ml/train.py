"""Train the brain-tumour classifier and write a model directory with its card, its LiteRT
export for the worker (``ml.export``) and its out-of-distribution gate.

    python -m ml.train --data ../shared/datasets/brain-tumor-mri/Training \
        --data ../shared/datasets/br35h --out ml/models/brain-tumour/2026.11.1
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
from ml import cli
from ml.calibration import calibrated_probs, fit_temperature
from ml.card import MODEL_FILE, SPLIT_FILE, Card, ModelInput, sha256_file
from ml.cli import fail, non_negative_int
from ml.data import UNKNOWN_CODE, Dataset, healthy_items, load_items, split_by_group
from ml.fit_gate import OUTLIER_PICTURES, fit_for_model
from ml.fitting import EpochReport, load_parent, make_training_data, mask_accuracy, recalibrate_batch_norm
from ml.labels import CLASSES, NOTUMOR, index_folder
from ml.metrics import (
    NOTUMOR_INDEX,
    binary_report,
    choose_refer_threshold,
    choose_threshold,
    multiclass_report,
    per_source_metrics,
)
from ml.preprocess import PREPROCESS_VERSION, SIZE

DEFAULT_CACHE = Path(__file__).resolve().parent.parent / "var" / "ml-cache"


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


def train(args) -> Path:
    """The recipe: prepare the data, fit, calibrate, measure, write the model directory."""
    import keras
    import tensorflow as tf

    # The seed alone does not make a run repeatable: augmentation draws from stateful random
    # ops inside a parallel tf.data map, so which image gets which draw follows thread timing.
    # With op determinism that map runs serially (prefetch still overlaps it with training).
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    started = time.time()
    data = prepare_data(args)
    model, parent, history = fit(args, data)
    train_seconds = time.time() - started
    calibration = calibrate(model, data.val)
    figures = measure(model, data, calibration, args.seed)
    out = Path(args.out)
    save_model(model, out)
    card = build_card(args, out, model, parent, history, data, calibration, figures, train_seconds)
    write_model_dir(out, card, data, args.outlier_pictures)
    print(
        f"test accuracy {figures.metrics['accuracy']:.4f} macro-F1 {figures.metrics['macro_f1']:.4f} "
        f"tumour recall {figures.metrics['tumour_recall']} "
        f"specificity {figures.metrics['tumour_specificity']} ECE {figures.metrics['ece']:.4f}; "
        f"T={calibration.temperature:.3f} threshold={calibration.tumour_threshold:.3f} "
        f"refer={calibration.refer_threshold}; {train_seconds / 60:.1f} min -> {out}",
        flush=True,
    )
    return out


def prepare_data(args) -> Splits:
    """The --data images (at most --limit per label) and the --healthy ones, loaded and split."""
    items = [item for folder in args.data for item in index_folder(Path(folder))]
    if args.limit:
        rng = np.random.default_rng(args.seed)
        by_label: dict[str, list] = {}
        for item in items:
            by_label.setdefault(item.label, []).append(item)
        items = [it for group in by_label.values() for it in rng.permutation(group)[: args.limit]]
    healthy = healthy_items(args.healthy, args.healthy_limit, args.seed)
    items += healthy
    full = load_items(items, cache_dir=args.cache)
    split, dup_counts = split_by_group(full, seed=args.seed)
    train_ds, val_ds, test_ds = (full.subset(split[k]) for k in ("train", "val", "test"))
    print(
        f"{len(full)} images, {dup_counts['groups']} duplicate groups "
        f"({dup_counts['exact_duplicates']} exact copies, "
        f"{dup_counts['near_duplicate_pairs']} near-duplicate pairs); "
        f"train {len(train_ds)}, val {len(val_ds)}, test {len(test_ds)}",
        flush=True,
    )
    return Splits(full, split, dup_counts, train_ds, val_ds, test_ds, sorted({it.source for it in healthy}))


def fit(args, data: Splits):
    """(model, parent card or None, Keras history): the network fitted on the training split
    (or continued from --init), BatchNorm statistics re-estimated on clean images."""
    import keras

    from ml.model import build_model, masked_nll

    tf_train = make_training_data(data.train, args.batch, args.seed, args.augment_strength)
    rng = np.random.default_rng(args.seed)
    calibration = data.train.images[rng.permutation(len(data.train))[:1024]]
    if args.init:
        model, parent = load_parent(Path(args.init), data.full, data.split)
        print(f"starting from {args.init} ({parent.training['epochs_run']} epochs)", flush=True)
    else:
        model, parent = build_model(len(CLASSES)), None
    steps = int(np.ceil(len(data.train) / args.batch)) * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=args.lr, warmup_steps=min(300, steps // 10), alpha=0.02
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=masked_nll,
        metrics=[mask_accuracy],
    )
    callbacks = [
        EpochReport(data.val, calibration, args.epochs),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True),
    ]
    history = model.fit(tf_train, epochs=args.epochs, callbacks=callbacks, verbose=0)
    recalibrate_batch_norm(model, data.train.images[rng.permutation(len(data.train))[:4096]])
    return model, parent, history


def calibrate(model, val: Dataset) -> Calibration:
    """Temperature (on typed images), tumour threshold and refer threshold from validation."""
    val_logits = model.predict(val.images, batch_size=128, verbose=0)
    typed = val.labels < UNKNOWN_CODE
    temperature = fit_temperature(val_logits[typed], val.labels[typed])
    val_probs = calibrated_probs(val_logits, temperature)
    threshold = choose_threshold(1 - val_probs[:, NOTUMOR_INDEX], val.labels != NOTUMOR_INDEX, 0.99)
    refer = choose_refer_threshold(val_probs[typed], val.labels[typed])
    return Calibration(temperature, threshold, refer, val_probs)


def measure(model, data: Splits, calibration: Calibration, seed: int) -> HeldOutFigures:
    """Test-split figures of the calibrated model, and the baselines on the same images."""
    from ml.baselines import run_baselines

    test_ds, train_ds = data.test, data.train
    test_logits = model.predict(test_ds.images, batch_size=128, verbose=0)
    test_probs = calibrated_probs(test_logits, calibration.temperature)
    # The headline 4-class figures: typed images of the class-folder collections. Healthy-only
    # collections (--healthy) are reported per source, not mixed into them.
    test_typed = (test_ds.labels < UNKNOWN_CODE) & ~np.isin(test_ds.sources, data.healthy_sources)
    threshold = calibration.tumour_threshold
    test_metrics = multiclass_report(test_probs[test_typed], test_ds.labels[test_typed], threshold)
    uncalibrated_ece = multiclass_report(
        calibrated_probs(test_logits[test_typed]), test_ds.labels[test_typed], threshold
    )["ece"]
    tr_typed = (train_ds.labels < UNKNOWN_CODE) & ~np.isin(train_ds.sources, data.healthy_sources)
    baselines = run_baselines(
        train_ds.images[tr_typed],
        train_ds.labels[tr_typed],
        test_ds.images[test_typed],
        test_ds.labels[test_typed],
        seed,
    )
    return HeldOutFigures(test_metrics, uncalibrated_ece, test_probs, baselines)


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
    hist = {k: [round(float(v), 5) for v in vals] for k, vals in history.history.items()}
    full, split, threshold = data.full, data.split, calibration.tumour_threshold
    return Card(
        task=args.task,
        name=args.name or out.parent.name,
        version=out.name,
        description="Brain MRI slice classifier: glioma, meningioma, pituitary tumour or no tumour.",
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        model_file=MODEL_FILE,
        sha256=sha256_file(out / MODEL_FILE),
        classes=tuple(CLASSES),
        no_finding_class=NOTUMOR,
        input=ModelInput(height=SIZE, width=SIZE),
        preprocessing_version=PREPROCESS_VERSION,
        temperature=round(calibration.temperature, 4),
        tumour_threshold=round(threshold, 4),
        tumour_threshold_rule=(
            "highest cut-off on 1 - p(notumor) with validation tumour recall >= 0.99 (at most 0.5)"
        ),
        refer_threshold=calibration.refer_threshold,
        refer_threshold_rule="lowest calibrated top probability with validation accuracy >= 0.99 above it",
        parameters=int(model.count_params()),
        metrics={
            "split": "internal test (duplicate-group aware), 4-class images of the --data collections",
            **figures.metrics,
            "ece_before_calibration": figures.ece_before_calibration,
        },
        metrics_by_source=per_source_metrics(data.test, figures.probs, threshold),
        validation={
            "tumour_present": binary_report(
                1 - calibration.val_probs[:, NOTUMOR_INDEX], data.val.labels != NOTUMOR_INDEX, threshold
            )
        },
        baselines=figures.baselines,
        history=hist,
        training={
            "data": [str(d) for d in args.data],
            "healthy_data": [str(d) for d in args.healthy],
            "healthy_limit": args.healthy_limit,
            "dataset_fingerprint": full.fingerprint(),
            "duplicates": data.duplicates,
            "split_sizes": {k: int(len(v)) for k, v in split.items()},
            "label_counts": {
                name: {
                    lbl: int((full.subset(idx).labels == code).sum())
                    for code, lbl in enumerate([*CLASSES, "tumour_unknown_type"])
                }
                for name, idx in split.items()
            },
            "epochs_run": len(hist.get("loss", [])),
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
    )


def parse_args(argv=None):
    parser = cli.parser("ml.train", __doc__)
    parser.add_argument("--data", action="append", required=True, help="folder of class folders (repeatable)")
    parser.add_argument(
        "--out", required=True, help="model directory to write, e.g. ml/models/brain-tumour/VERSION"
    )
    parser.add_argument(
        "--healthy",
        action="append",
        type=Path,
        default=[],
        help="folder of tumour-free brain MRIs at any depth, all labelled notumor (repeatable)",
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
    parser.add_argument("--task", default=cards.DEFAULT_TASK)
    parser.add_argument("--name", default=None)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="preprocessed-array cache folder")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except (FileNotFoundError, ValueError, cards.ModelLoadError) as exc:
        return fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
