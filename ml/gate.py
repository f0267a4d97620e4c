"""Out-of-distribution gate: is this picture a brain MRI slice the model can read?

This module holds the serving decisions only; fitting them is ``ml.fit_gate``.

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


def image_reason(stats: ImageStats, t: dict, kind: str = "MRI") -> str:
    """Why the picture itself is not a slice of ``kind`` (the model's modality: MRI or CT), or
    "" when it passes."""
    if stats.colourfulness > t["max_colourfulness"]:
        return f"colour picture: brain {kind} slices are greyscale"
    if stats.contrast < t["min_contrast"]:
        return "blank or nearly uniform image"
    if stats.border_brightness > t["max_border_brightness"]:
        article = "an" if kind == "MRI" else "a"
        return f"bright background: {article} {kind} slice shows the head on a dark background"
    if not (t["min_foreground"] <= stats.foreground <= t["max_foreground"]):
        return "no head-shaped region on a dark background"
    # Cards fitted before these two checks existed lack their thresholds: skip them there.
    if stats.structure < t.get("min_structure", 0.0):
        return "smooth shading with no anatomy inside it"
    if stats.head_blob < t.get("min_head_blob", 0.0):
        return "scattered bright points on a dark field, not one head"
    return ""


def feature_reason(evidence: dict, t: dict, kind: str = "MRI") -> str:
    """Why the model's features say this is not a slice of ``kind``, or "" when they pass."""
    distance = evidence["feature_distance"]
    if distance > t["max_feature_distance"]:
        return (
            f"unlike the brain {kind} slices the model was trained on (feature distance "
            f"{distance:.1f} > {t['max_feature_distance']:.1f})"
        )
    # Cards fitted before outlier exposure lack the score and its limit: skip it there.
    score = evidence.get("outlier_score")
    if score is not None and "max_outlier_score" in t and score > t["max_outlier_score"]:
        return (
            f"closer to pictures that are not brain {kind} slices than to the training slices "
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
