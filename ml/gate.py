"""Out-of-distribution gate: is this picture a brain MRI slice the model can read?

Two kinds of evidence, both fitted on the training split only and recorded in the card:
- image statistics the model never sees: colour (MRI is grey), a dark background around
  the head, some structure (not blank);
- the model's own pooled features: Mahalanobis distance to the training features
  (Lee et al., 2018), which catches grey pictures of other things (documents, textures,
  other body parts) that pass the image checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.preprocess import crop_square, foreground_mask


@dataclass
class ImageStats:
    colourfulness: float  # mean channel spread, 0-255 scale
    border_brightness: float  # median of the outer ring of the cropped square, 0-255
    contrast: float  # standard deviation of the cropped square, 0-255
    foreground: float  # fraction of the cropped square brighter than the background

    def as_dict(self) -> dict:
        return {k: round(float(v), 3) for k, v in self.__dict__.items()}


def image_stats(grey: np.ndarray, colourfulness: float) -> ImageStats:
    square = crop_square(grey).astype(np.float32)
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
    )


def fit(stats: list[ImageStats], features: np.ndarray, quantile: float = 0.999) -> tuple[dict, dict]:
    """Gate thresholds (for the card) and feature statistics (saved beside the model)."""
    col = np.array([s.colourfulness for s in stats])
    border = np.array([s.border_brightness for s in stats])
    contrast = np.array([s.contrast for s in stats])
    fg = np.array([s.foreground for s in stats])
    mean = features.mean(axis=0)
    from sklearn.covariance import LedoitWolf

    cov = LedoitWolf().fit(features - mean).covariance_
    precision = np.linalg.inv(cov)
    dist = mahalanobis(features, mean, precision)
    # Margins beyond the training extremes: other scanners differ in noise and contrast, and
    # the gate must refuse non-MRI pictures, not unusual MRIs.
    thresholds = {
        "max_colourfulness": round(float(max(np.quantile(col, quantile) * 2, 6.0)), 3),
        "max_border_brightness": round(float(max(np.quantile(border, quantile) * 1.5, 40.0)), 3),
        "min_contrast": round(float(min(np.quantile(contrast, 1 - quantile) * 0.5, 12.0)), 3),
        "min_foreground": round(float(np.quantile(fg, 1 - quantile) * 0.5), 4),
        "max_foreground": round(float(min(1.0, np.quantile(fg, quantile) + 0.02)), 4),
        "max_feature_distance": round(float(np.quantile(dist, quantile) * 1.25), 3),
        "fitted_on": f"{len(stats)} training images, quantile {quantile}",
        "training_feature_distance_p50": round(float(np.median(dist)), 3),
    }
    return thresholds, {"mean": mean.astype(np.float32), "precision": precision.astype(np.float32)}


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
    return ""


def feature_reason(distance: float, t: dict) -> str:
    if distance > t["max_feature_distance"]:
        return (
            f"unlike the brain MRI slices the model was trained on (feature distance "
            f"{distance:.1f} > {t['max_feature_distance']:.1f})"
        )
    return ""


def fit_for_model(model_dir, train_paths: list[str]) -> dict:
    """Fit the gate on a model's training images; write gate.npz and the card's thresholds."""
    from pathlib import Path

    from ml import card as cards
    from ml.serve import GATE_FILE, Classifier

    model_dir = Path(model_dir)
    classifier = Classifier.load(model_dir)
    stats, feats = [], []
    for batch_stats, batch_feats, _ in classifier.score_files(train_paths):
        stats.extend(batch_stats)
        feats.append(batch_feats)
    thresholds, arrays = fit(stats, np.concatenate(feats))
    np.savez(model_dir / GATE_FILE, **arrays)
    card = cards.read_card(model_dir)
    card["ood_gate"] = thresholds
    card["ood_gate_file"] = GATE_FILE
    cards.write_json_atomic(model_dir / cards.CARD_FILE, card)
    return thresholds


def main(argv=None) -> int:
    """python -m ml.gate --model DIR: (re)fit the gate on the model's own training split."""
    import argparse
    import sys
    from pathlib import Path

    from ml import card as cards
    from ml.dedup import sha256_file
    from ml.labels import index_folder

    parser = argparse.ArgumentParser(prog="python -m ml.gate", description=main.__doc__)
    parser.add_argument("--model", type=Path, required=True)
    args = parser.parse_args(argv)
    card = cards.read_card(args.model)
    with np.load(args.model / "split.npz") as data:
        train_hashes = set(data["train"].tolist())
    paths = [
        str(it.path)
        for folder in card["training"]["data"]
        for it in index_folder(Path(folder))
        if sha256_file(it.path) in train_hashes
    ]
    thresholds = fit_for_model(args.model, paths)
    print(thresholds)
    return 0 if paths else (print("no training images found", file=sys.stderr) or 2)


if __name__ == "__main__":
    raise SystemExit(main())
