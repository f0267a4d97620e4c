"""Score a task's model on a labelled folder, or measure that it refuses another task's images.

    python -m ml.evaluate --data ../shared/datasets/brain-tumor-mri/Training --split test
    python -m ml.evaluate --data ../shared/datasets/br35h --split test --json out.json
    python -m ml.evaluate --data ../shared/datasets/alzheimer-mri/train --label notumor
    python -m ml.evaluate --data ../shared/datasets/br35h --split test --runtime keras
    python -m ml.evaluate --task dementia-mri --data ../shared/datasets/alzheimer-mri/train --split test
    python -m ml.evaluate --task tumour-ct --data ../shared/datasets/lgg-flair --foreign

``--task`` picks the newest shipped model of that task (``--model`` a given one). A folder of
the task's classes gets per-class metrics; a binary set (yes/no folders, or one ``--label``)
gets tumour-present metrics. Every report counts the images refused by the gate alone, by
the modality check alone and by both together (as the product runs them); ``--foreign``
scores a folder none of whose images the model should read (another modality, another
collection) by those counts alone. Prints a warning when a figure falls far below the model
card's. ``--runtime`` picks Keras or the LiteRT export the worker serves (the default when
the model directory holds it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ml import card as cards
from ml import cli, gate, tasks
from ml.cli import add_json_argument, fail, print_report, progress
from ml.data import UNKNOWN_CODE, label_code
from ml.labels import NOTUMOR, TASK_CLASSES, TUMOUR_UNKNOWN, index_folder
from ml.metrics import binary_report, multiclass_report
from ml.runtimes import RUNTIMES

# A folder whose figure is this far below the card's is reported as a warning.
WARN_DROP = 0.05


def refusals(classifier, paths: list[str], batch: int = 64) -> tuple[np.ndarray, dict]:
    """(calibrated probabilities, refusal counts) for the images at ``paths``: how many the
    gate refuses on its own, how many the modality check refuses on its own, and how many the
    product refuses (either: the image checks, then the modality check, then the features)."""
    import time

    probs, by_gate, by_modality = [], [], []
    started = time.time()
    thresholds = classifier.gate_thresholds
    done = 0
    for stats, feats, pr, modality in classifier.score_files(paths, batch):
        gated = (
            gate.refusals(stats, feats, thresholds, classifier.gate_stats)
            if thresholds
            else [""] * len(stats)
        )
        by_gate.extend(bool(r) for r in gated)
        by_modality.extend(bool(m) for m in modality)
        probs.append(pr)
        done += len(stats)
        progress(done, len(paths), started, "scoring")
    by_gate, by_modality = np.array(by_gate), np.array(by_modality)
    either = by_gate | by_modality
    n = max(len(paths), 1)
    counts = {
        "gate_refused": int(by_gate.sum()),
        "gate_refused_rate": round(float(by_gate.sum() / n), 4),
        "modality_check_refused": int(by_modality.sum()),
        "modality_check_refused_rate": round(float(by_modality.sum() / n), 4),
        # What the product does: the modality check and the gate, either refusing.
        "not_mri_refused": int(either.sum()),
        "not_mri_rate": round(float(either.sum() / n), 4),
        "wrong_modality_refused": int((by_modality & ~by_gate).sum()),
    }
    return np.concatenate(probs), counts


def evaluate(classifier, paths: list[str], labels: np.ndarray, batch: int = 64) -> dict:
    """Metrics for images at ``paths`` with label codes ``labels`` (see ml.data.label_code)
    of the classifier's task, and the refusal counts of ``refusals``."""
    probs, counts = refusals(classifier, paths, batch)
    task = tasks.get(classifier.card.task)
    no_finding = task.classes.index(task.no_finding)
    threshold = classifier.threshold
    typed = labels < UNKNOWN_CODE
    if typed.all() and len(np.unique(labels)) > 1:
        result = multiclass_report(probs, labels, threshold, task.classes, no_finding, bool(task.flagged))
        result.pop("roc_curves")
        result.pop("reliability")
    else:
        binary = binary_report(1 - probs[:, no_finding], labels != no_finding, threshold)
        result = {k: binary[k] for k in ("n", "accuracy", "f1", "tumour_recall", "tumour_specificity")}
        result["counts"] = binary["counts"]
    return result | counts


def warnings_against_card(result: dict, card: cards.Card, source: str | None = None) -> list[str]:
    """Figures far below the card's: the card's figures for the same source collection where
    it has them (Br35H's tumour recall is compared with Br35H's), else its 4-class test split."""
    reference, where = card.metrics, "its internal test split"
    by_source = card.metrics_by_source.get(source) if source else None
    if by_source:
        reference = by_source if "labels" in result else by_source.get("tumour_present", {})
        where = f"its internal test split of {source}"
    out = []
    for key in ("accuracy", "macro_f1", "tumour_recall", "tumour_specificity"):
        ours, theirs = result.get(key), reference.get(key)
        if ours is None or theirs is None:
            continue
        if key == "accuracy" and "labels" not in result:
            continue  # binary accuracy is not comparable with 4-class accuracy
        if ours < theirs - WARN_DROP:
            out.append(f"{key} {ours:.3f} is far below the model card's {theirs:.3f} on {where}")
    return out


def split_names(items: list, model_dir: Path) -> list[str | None]:
    """For each item, the split ("train", "val", "test") of the model's data its image is in,
    or None: one hash per file, one read of the saved split."""
    split_file = model_dir / cards.SPLIT_FILE
    if not split_file.is_file():
        raise FileNotFoundError(f"{split_file} not found: this model did not save its split")
    with np.load(split_file) as data:
        where = {digest: name for name in ("train", "val", "test") for digest in data[name].tolist()}
    return [where.get(cards.sha256_file(it.path)) for it in items]


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --data, --label, --split, --limit, --json: which model scores which images."""
    parser.add_argument(
        "--task",
        default=tasks.DEFAULT,
        choices=[*tasks.TASKS],
        help="the newest shipped model of this task (default %(default)s)",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="model directory (default: the task's newest)"
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of the task's class folders")
    labels = sorted({label for classes in TASK_CLASSES.values() for label in classes} | {TUMOUR_UNKNOWN})
    parser.add_argument("--label", choices=labels, help="every image under --data has this label")
    parser.add_argument(
        "--foreign",
        action="store_true",
        help="none of these images is the task's (another modality or collection): count refusals only",
    )
    parser.add_argument(
        "--split",
        choices=["train", "val", "test"],
        help="only images in this split of the model's training data",
    )
    parser.add_argument("--limit", type=int, default=0, help="score at most N images (evenly spaced)")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="run the model with Keras (TensorFlow) or its LiteRT export, as the worker does "
        "(default: LiteRT when the model directory holds its export)",
    )
    add_json_argument(parser)


def select(args) -> tuple:
    """(classifier, items, seen): the model and the images ``args`` name, and how many of
    them the model trained or was validated on. Raises FileNotFoundError, ValueError or
    ModelLoadError with a message for the user."""
    from ml.serve import Classifier

    model_dir = Path(args.model or cards.default_model_dir(getattr(args, "task", tasks.DEFAULT)))
    classifier = Classifier.load(model_dir, runtime=args.runtime)
    task = tasks.get(classifier.card.task)
    if getattr(args, "foreign", False):
        # Another task's folders: their class names mean nothing here, every file counts.
        items = index_folder(args.data, label=task.no_finding, task=task.name)
    else:
        if (
            args.label
            and args.label not in task.classes
            and not (args.label == TUMOUR_UNKNOWN and task.flagged)
        ):
            raise ValueError(f"--label {args.label} is not a class of {task.name}: {', '.join(task.classes)}")
        items = index_folder(args.data, label=args.label, task=task.name)
    splits = None
    if args.split:
        splits = split_names(items, model_dir)
        items = [it for it, name in zip(items, splits, strict=True) if name == args.split]
        if not items:
            raise ValueError(f"none of these images is in the model's {args.split} split")
        splits = [args.split] * len(items)
    if args.limit and len(items) > args.limit:
        keep = np.linspace(0, len(items) - 1, args.limit).round().astype(int)
        items = [items[i] for i in keep]
        splits = [splits[i] for i in keep] if splits else None
    if splits is None and (model_dir / cards.SPLIT_FILE).is_file():
        splits = split_names(items, model_dir)
    seen = sum(name in ("train", "val") for name in splits or [])
    return classifier, items, seen


def select_or_explain(args) -> tuple | None:
    """``select(args)``, or None after telling the user on stderr why nothing was selected."""
    from ml.serve import ModelLoadError

    try:
        return select(args)
    except (FileNotFoundError, ValueError, ModelLoadError) as exc:
        fail(f"{args.data}: {exc}")
        return None


def report_header(classifier, args) -> dict:
    """The first keys of every report on selected images: which model, which folder."""
    return {
        "model": classifier.card.label,
        "task": tasks.canonical(classifier.card.task),
        "runtime": classifier.runtime.name,
        "data": str(args.data),
    }


def main(argv=None) -> int:
    parser = cli.parser("ml.evaluate", __doc__)
    add_selection_arguments(parser)
    args = parser.parse_args(argv)

    selection = select_or_explain(args)
    if selection is None:
        return cli.USAGE_ERROR
    classifier, items, seen = selection
    paths = [str(it.path) for it in items]
    if args.foreign:
        result = {**report_header(classifier, args), "n": len(paths), **refusals(classifier, paths)[1]}
        result["seen_in_training"] = seen
        print_report(result, args.json)
        return 0
    labels = np.array([label_code(it.label, classifier.card.classes) for it in items])
    result = {**report_header(classifier, args), **evaluate(classifier, paths, labels)}
    if args.label == NOTUMOR:
        result["called_notumor"] = result["tumour_specificity"]
    result["seen_in_training"] = seen
    print_report(result, args.json)
    if seen:
        print(
            f"WARNING: the model trained or was validated on {seen} of these {len(items)} images: "
            "the figures are optimistic (--split test scores only its held-out ones)",
            file=sys.stderr,
        )
    for warning in warnings_against_card(result, classifier.card, items[0].source):
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
