"""Fitting the out-of-distribution gate (``ml.gate``) on a model's training images.

    python -m ml.fit_gate --model DIR [--outlier-pictures N] [--negatives DIR [--negatives-train-of MODEL]]

``ml.train`` calls ``fit_for_model`` for every model it writes; the command refits an existing
model directory on its own training split (its card and split.npz say which images).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ml import cli, tasks
from ml.card import GATE_FILE, SPLIT_FILE, Card, ModelLoadError, sha256_file
from ml.cli import non_negative_int, progress
from ml.data import healthy_items
from ml.gate import ImageStats, image_reason, mahalanobis
from ml.labels import index_folder
from ml.outliers import outlier_pictures as generate_outliers
from ml.serve import Classifier

# Outlier score: logistic-regression strength (inverse), the number of generated pictures, and
# the margin (in log-odds) above the training slices' 99.9th percentile that the limit sits.
_OUTLIER_C = 0.3
OUTLIER_PICTURES = 3000
_OUTLIER_MARGIN = 1.5


def image_limits(stats: list[ImageStats], quantile: float = 0.999) -> dict:
    """Limits of the image checks, from the training images' statistics."""
    col = np.array([s.colourfulness for s in stats])
    border = np.array([s.border_brightness for s in stats])
    contrast = np.array([s.contrast for s in stats])
    fg = np.array([s.foreground for s in stats])
    structure = np.array([s.structure for s in stats])
    blob = np.array([s.head_blob for s in stats])
    # Margins beyond the training extremes: other scanners differ in noise and contrast, and
    # the gate must refuse non-MRI pictures, not unusual MRIs.
    return {
        "max_colourfulness": round(float(max(np.quantile(col, quantile) * 2, 6.0)), 3),
        # x2: some scanners frame the head in mid-grey (held-out Br35H slices reach 89); a
        # photograph with a bright background that gets under it meets the feature checks.
        "max_border_brightness": round(float(max(np.quantile(border, quantile) * 2.0, 40.0)), 3),
        "min_contrast": round(float(min(np.quantile(contrast, 1 - quantile) * 0.5, 12.0)), 3),
        "min_foreground": round(float(np.quantile(fg, 1 - quantile) * 0.5), 4),
        "max_foreground": round(float(min(1.0, np.quantile(fg, quantile) + 0.02)), 4),
        # Blurring a slice (Gaussian sigma 4 px) or shrinking it to 48 px lowers structure
        # to about half its training minimum: the margin is wider than that.
        "min_structure": round(float(np.quantile(structure, 1 - quantile) * 0.35), 4),
        "min_head_blob": round(float(np.quantile(blob, 1 - quantile) * 0.35), 4),
    }


def fit(
    stats: list[ImageStats],
    features: np.ndarray,
    quantile: float = 0.999,
    outlier_features: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """Gate thresholds (for the card) and feature statistics (saved beside the model).

    ``outlier_features``: pooled features of pictures that are not MRI slices and pass the
    image checks; with them the gate also gets an outlier score and its limit."""
    from sklearn.covariance import LedoitWolf

    mean = features.mean(axis=0)
    cov = LedoitWolf().fit(features - mean).covariance_
    precision = np.linalg.inv(cov)
    dist = mahalanobis(features, mean, precision)
    thresholds = image_limits(stats, quantile) | {
        "max_feature_distance": round(float(np.quantile(dist, quantile) * 1.25), 3),
        "fitted_on": f"{len(stats)} training images, quantile {quantile}",
        "training_feature_distance_p50": round(float(np.median(dist)), 3),
    }
    arrays = {"mean": mean.astype(np.float32), "precision": precision.astype(np.float32)}
    if outlier_features is not None and len(outlier_features):
        weights, bias = _fit_outlier_direction(features, outlier_features)
        train_scores = features @ weights + bias
        limit = np.quantile(train_scores, quantile) + _OUTLIER_MARGIN
        thresholds["max_outlier_score"] = round(float(limit), 3)
        thresholds["outlier_exposure"] = (
            f"{len(outlier_features)} generated non-MRI pictures that pass the image checks "
            f"(ml.outliers), logistic regression C={_OUTLIER_C}"
        )
        arrays["outlier_weights"] = weights.astype(np.float32)
        arrays["outlier_bias"] = np.float32(bias)
    return thresholds, arrays


def _fit_outlier_direction(features: np.ndarray, outliers: np.ndarray) -> tuple[np.ndarray, float]:
    """Log-odds of "not an MRI slice" as weights and bias on the raw features."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([features, outliers]).astype(np.float64)
    y = np.r_[np.zeros(len(features)), np.ones(len(outliers))]
    centre, spread = features.mean(axis=0), features.std(axis=0)
    # A feature (nearly) constant on the training slices would otherwise get an unbounded
    # weight, and any real slice that lights it slightly would be refused.
    scale = np.maximum(spread, 0.01 * float(np.median(spread)) + 1e-6)
    model = LogisticRegression(C=_OUTLIER_C, class_weight="balanced", max_iter=5000)
    model.fit((x - centre) / scale, y)
    weights = model.coef_[0] / scale
    return weights, float(model.intercept_[0] - centre @ weights)


def fit_for_model(
    model_dir, train_paths: list[str], outlier_pictures: int = OUTLIER_PICTURES, negatives: list[str] = ()
) -> dict:
    """Fit the gate on a model's training images and ``outlier_pictures`` generated non-MRI
    pictures, and on ``negatives``: files of another task's kind (a CT model's gate against
    MRI slices, an MRI model's against CT) that it must refuse; write gate.npz and the card's
    thresholds."""
    model_dir = Path(model_dir)
    classifier = Classifier.load(model_dir)
    stats, feats = _stats_and_features(classifier, train_paths, "gate: training images")
    limits = image_limits(stats)
    outliers = []
    if outlier_pictures:
        print(f"gate: generating {outlier_pictures} non-MRI pictures (ml.outliers)", file=sys.stderr)
        pictures = [picture for _, picture in generate_outliers(outlier_pictures)]
        outlier_stats, outlier_feats = _stats_and_features(classifier, pictures, "gate: non-MRI pictures")
        # Only pictures that get past the image checks reach the feature checks.
        outliers.append(outlier_feats[[image_reason(s, limits) == "" for s in outlier_stats]])
    passed_negatives = 0
    if negatives:
        negative_stats, negative_feats = _stats_and_features(classifier, list(negatives), "gate: negatives")
        kept = negative_feats[[image_reason(s, limits) == "" for s in negative_stats]]
        passed_negatives = len(kept)
        outliers.append(kept)
    outliers = np.concatenate(outliers) if outliers else None
    if outliers is not None and not len(outliers):
        print("gate: no outlier passes the image checks: no outlier score", file=sys.stderr)
    thresholds, arrays = fit(stats, feats, outlier_features=outliers)
    if negatives and "outlier_exposure" in thresholds:
        n_generated = len(outliers) - passed_negatives
        thresholds["outlier_exposure"] = (
            f"{n_generated} generated non-MRI pictures (ml.outliers) and {passed_negatives} of "
            f"{len(negatives)} slices of another task's kind that pass the image checks, "
            f"logistic regression C={_OUTLIER_C}"
        )
    np.savez(model_dir / GATE_FILE, **arrays)
    Card.load(model_dir).replace(ood_gate=thresholds, ood_gate_file=GATE_FILE).save(model_dir)
    return thresholds


def negative_paths(folders: list[Path], limit: int, train_of: list[Path]) -> list[str]:
    """At most ``limit`` files (evenly spaced) under ``folders``; with ``train_of``, only those
    in the training split of those models, so their held-out images stay unseen by the gate."""
    items = [it for folder in folders for it in index_folder(Path(folder), label="notumor")]
    if train_of:
        train = set()
        for model_dir in train_of:
            with np.load(Path(model_dir) / SPLIT_FILE) as data:
                train |= set(data["train"].tolist())
        items = [it for it in items if sha256_file(it.path) in train]
    if limit and len(items) > limit:
        items = [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]
    return [str(it.path) for it in items]


def _stats_and_features(classifier, images: list, what: str) -> tuple[list[ImageStats], np.ndarray]:
    stats, feats, started = [], [], time.time()
    for batch_stats, batch_feats, _, _ in classifier.score_files(images):
        stats.extend(batch_stats)
        feats.append(batch_feats)
        progress(len(stats), len(images), started, what)
    return stats, np.concatenate(feats)


def main(argv=None) -> int:
    """python -m ml.fit_gate --model DIR: (re)fit the gate on the model's own training split."""
    parser = cli.parser("ml.fit_gate", main.__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--outlier-pictures", type=non_negative_int, default=OUTLIER_PICTURES)
    parser.add_argument(
        "--negatives",
        type=Path,
        action="append",
        default=[],
        help="folder of another task's kind of images (any depth) the gate must refuse (repeatable)",
    )
    parser.add_argument("--negatives-limit", type=non_negative_int, default=600, help="at most N of them")
    parser.add_argument(
        "--negatives-train-of",
        type=Path,
        action="append",
        default=[],
        help="only the --negatives images in this model's training split (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        card = Card.load(args.model)
    except ModelLoadError as exc:
        return cli.fail(f"{args.model} is not a model directory with a readable card: {exc}")
    with np.load(args.model / SPLIT_FILE) as data:
        train_hashes = set(data["train"].tolist())
    training, task = card.training, tasks.get(card.task)
    items = [it for folder in training["data"] for it in index_folder(Path(folder), task=task.name)]
    healthy = [Path(f) for f in training.get("healthy_data", [])]
    items += healthy_items(healthy, 0, training["seed"], task.no_finding, task.name)
    paths = [str(it.path) for it in items if sha256_file(it.path) in train_hashes]
    negatives = negative_paths(args.negatives, args.negatives_limit, args.negatives_train_of)
    thresholds = fit_for_model(args.model, paths, args.outlier_pictures, negatives)
    print(thresholds)
    return 0 if paths else (print("no training images found", file=sys.stderr) or 2)


if __name__ == "__main__":
    raise SystemExit(main())
