"""Out-of-distribution gate: is this picture a brain MRI slice the model can read?

Three kinds of evidence, fitted on the training split (the third also on generated
pictures) and recorded in the card:
- image statistics the model never sees: colour (MRI is grey), a dark background around
  the head, some contrast (not blank), anatomy inside the head (not a smooth gradient:
  ``structure``), and one connected head rather than bright points scattered over a dark
  field (``head_blob``: a star field);
- the model's own pooled features: Mahalanobis distance to the training features
  (Lee et al., 2018), which catches grey pictures of other things (documents, textures,
  other body parts) that pass the image checks;
- an outlier score on the same features (Hendrycks et al., 2019, "outlier exposure"): a
  logistic regression of the training slices against generated pictures that are not MRI
  slices (``ml.outliers``). A distance only says "how far"; a picture near the slices in
  the directions they vary in (a grey microscope field) can be far along the direction
  that separates slices from everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from ml.preprocess import crop_square, foreground_mask

# Side of the thumbnail on which ``structure`` is measured: coarse enough that a blurred or
# low-resolution slice still shows its anatomy, fine enough that a smooth ramp shows none.
_STRUCTURE_SIDE = 32
# ``head_blob``: thumbnail side, and the tissue threshold as a fraction of the 99th percentile.
_BLOB_SIDE = 64
_TISSUE_FRACTION = 0.25


@dataclass
class ImageStats:
    colourfulness: float  # mean channel spread, 0-255 scale
    border_brightness: float  # median of the outer ring of the cropped square, 0-255
    contrast: float  # standard deviation of the cropped square, 0-255
    foreground: float  # fraction of the cropped square brighter than the background
    # Mean |Laplacian| inside the head on a 32 px thumbnail, over the head's intensity
    # spread: about 0.5-2 for MRI slices (blurred ones included), below 0.1 for gradients.
    structure: float
    # Largest connected region of tissue (holes filled) as a share of the foreground: over
    # 0.25 for MRI slices, under 0.05 for scattered bright points on a dark field.
    head_blob: float

    def as_dict(self) -> dict:
        return {k: round(float(v), 3) for k, v in self.__dict__.items()}


def image_stats(grey: np.ndarray, colourfulness: float) -> ImageStats:
    square8 = crop_square(grey)
    square = square8.astype(np.float32)
    side = square.shape[0]
    ring = max(1, side // 16)
    border = np.concatenate(
        [square[:ring].ravel(), square[-ring:].ravel(), square[:, :ring].ravel(), square[:, -ring:].ravel()]
    )
    return ImageStats(
        colourfulness=float(colourfulness),
        border_brightness=float(np.median(border)),
        contrast=float(square.std()),
        foreground=float(foreground_mask(square).mean()),
        structure=_structure(_thumbnail(square8, _STRUCTURE_SIDE)),
        head_blob=_head_blob(_thumbnail(square8, _BLOB_SIDE)),
    )


def _thumbnail(square: np.ndarray, side: int) -> np.ndarray:
    small = Image.fromarray(square).resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(small, dtype=np.float32)


def _structure(thumb: np.ndarray) -> float:
    """How much anatomy the head holds: mean absolute Laplacian inside the filled head,
    divided by the head's intensity spread (so contrast does not count)."""
    head = ndimage.binary_fill_holes(foreground_mask(thumb))
    inner = ndimage.binary_erosion(head)
    if not inner.any():
        return 0.0
    return float(np.abs(ndimage.laplace(thumb))[inner].mean() / (thumb[head].std() + 1e-3))


def _head_blob(thumb: np.ndarray) -> float:
    """Share of the foreground covered by the largest connected region of tissue (pixels at
    least a quarter as bright as the 99th percentile), its holes filled."""
    foreground = int(foreground_mask(thumb).sum())
    labels, n = ndimage.label(thumb >= _TISSUE_FRACTION * float(np.percentile(thumb, 99)))
    if n == 0 or foreground == 0:
        return 0.0
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return float(ndimage.binary_fill_holes(labels == largest).sum() / foreground)


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


def feature_evidence(features: np.ndarray, arrays: dict) -> list[dict]:
    """Per picture: its Mahalanobis distance to the training slices and, where the gate was
    fitted with outlier exposure, its outlier score (log-odds of "not an MRI slice")."""
    distances = mahalanobis(features, arrays["mean"], arrays["precision"])
    scores = None
    if "outlier_weights" in arrays:
        scores = features @ arrays["outlier_weights"] + arrays["outlier_bias"]
    return [
        {"feature_distance": round(float(d), 3)}
        | ({"outlier_score": round(float(scores[i]), 3)} if scores is not None else {})
        for i, d in enumerate(distances)
    ]


def mahalanobis(features: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    centred = np.atleast_2d(features) - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, precision, centred), 0.0))


def image_reason(stats: ImageStats, t: dict) -> str:
    """Why the picture itself is not an MRI slice, or "" when it passes."""
    if stats.colourfulness > t["max_colourfulness"]:
        return "colour picture: brain MRI slices are greyscale"
    if stats.contrast < t["min_contrast"]:
        return "blank or nearly uniform image"
    if stats.border_brightness > t["max_border_brightness"]:
        return "bright background: an MRI slice shows the head on a dark background"
    if not (t["min_foreground"] <= stats.foreground <= t["max_foreground"]):
        return "no head-shaped region on a dark background"
    # Cards fitted before these two checks existed lack their thresholds: skip them there.
    if stats.structure < t.get("min_structure", 0.0):
        return "smooth shading with no anatomy inside it"
    if stats.head_blob < t.get("min_head_blob", 0.0):
        return "scattered bright points on a dark field, not one head"
    return ""


def feature_reason(evidence: dict, t: dict) -> str:
    """Why the model's features say this is not an MRI slice, or "" when they pass."""
    distance = evidence["feature_distance"]
    if distance > t["max_feature_distance"]:
        return (
            f"unlike the brain MRI slices the model was trained on (feature distance "
            f"{distance:.1f} > {t['max_feature_distance']:.1f})"
        )
    # Cards fitted before outlier exposure lack the score and its limit: skip it there.
    score = evidence.get("outlier_score")
    if score is not None and "max_outlier_score" in t and score > t["max_outlier_score"]:
        return (
            f"closer to pictures that are not brain MRI slices than to the training slices "
            f"(outlier score {score:.2f} > {t['max_outlier_score']:.2f})"
        )
    return ""


def refusals(
    stats: list[ImageStats], features: np.ndarray, thresholds: dict, arrays: dict | None
) -> list[str]:
    """Per picture, why the gate refuses it ("" when it passes): the serving decision in bulk."""
    evidence = feature_evidence(features, arrays) if arrays is not None else [None] * len(stats)
    return [
        image_reason(s, thresholds) or (feature_reason(ev, thresholds) if ev else "")
        for s, ev in zip(stats, evidence, strict=True)
    ]


def fit_for_model(model_dir, train_paths: list[str], outlier_pictures: int = OUTLIER_PICTURES) -> dict:
    """Fit the gate on a model's training images and ``outlier_pictures`` generated non-MRI
    pictures; write gate.npz and the card's thresholds."""
    import sys
    from pathlib import Path

    from ml import card as cards
    from ml.outliers import outlier_pictures as generate_outliers
    from ml.serve import GATE_FILE, Classifier

    model_dir = Path(model_dir)
    classifier = Classifier.load(model_dir)
    stats, feats = _stats_and_features(classifier, train_paths, "gate: training images")
    outliers = None
    if outlier_pictures:
        print(f"gate: generating {outlier_pictures} non-MRI pictures (ml.outliers)", file=sys.stderr)
        pictures = [picture for _, picture in generate_outliers(outlier_pictures)]
        outlier_stats, outlier_feats = _stats_and_features(classifier, pictures, "gate: non-MRI pictures")
        # Only pictures that get past the image checks reach the feature checks.
        limits = image_limits(stats)
        outliers = outlier_feats[[image_reason(s, limits) == "" for s in outlier_stats]]
        if not len(outliers):
            print("gate: no generated picture passes the image checks: no outlier score", file=sys.stderr)
    thresholds, arrays = fit(stats, feats, outlier_features=outliers)
    np.savez(model_dir / GATE_FILE, **arrays)
    card = cards.read_card(model_dir)
    card["ood_gate"] = thresholds
    card["ood_gate_file"] = GATE_FILE
    cards.write_json_atomic(model_dir / cards.CARD_FILE, card)
    return thresholds


def _stats_and_features(classifier, images: list, what: str) -> tuple[list[ImageStats], np.ndarray]:
    import time

    from ml.data import progress

    stats, feats, started = [], [], time.time()
    for batch_stats, batch_feats, _, _ in classifier.score_files(images):
        stats.extend(batch_stats)
        feats.append(batch_feats)
        progress(len(stats), len(images), started, what)
    return stats, np.concatenate(feats)


def main(argv=None) -> int:
    """python -m ml.gate --model DIR: (re)fit the gate on the model's own training split."""
    import argparse
    import sys
    from pathlib import Path

    from ml import card as cards
    from ml.data import non_negative_int
    from ml.dedup import sha256_file
    from ml.labels import index_folder
    from ml.train import healthy_items

    parser = argparse.ArgumentParser(prog="python -m ml.gate", description=main.__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--outlier-pictures", type=non_negative_int, default=OUTLIER_PICTURES)
    args = parser.parse_args(argv)
    try:
        card = cards.read_card(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {args.model} is not a model directory with a readable card: {exc}", file=sys.stderr)
        return 2
    with np.load(args.model / "split.npz") as data:
        train_hashes = set(data["train"].tolist())
    training = card["training"]
    items = [it for folder in training["data"] for it in index_folder(Path(folder))]
    items += healthy_items([Path(f) for f in training.get("healthy_data", [])], 0, training["seed"])
    paths = [str(it.path) for it in items if sha256_file(it.path) in train_hashes]
    thresholds = fit_for_model(args.model, paths, args.outlier_pictures)
    print(thresholds)
    return 0 if paths else (print("no training images found", file=sys.stderr) or 2)


if __name__ == "__main__":
    raise SystemExit(main())
