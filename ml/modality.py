"""Modality check: is this slice MR or CT? It runs before any task model reads a picture.

A CT slice shown to an MRI model gets an MRI answer (80% of healthy CT were called "tumour"
by 2026.11.24), so each model's card names the modality it reads and the serving path asks
this check first. The check looks at the picture alone, not at a task model's features:
- a radial intensity profile of the head (skull bone is the brightest ring on CT, dark on
  MRI), the share of saturated pixels per ring and a histogram of the head's intensities;
- a gradient-boosted tree classifier (scikit-learn) on those 42 numbers, fitted on every MRI
  folder we have (as they are and skull-stripped) against CT (``ml.fit_modality``).

This module holds what serving needs; fitting is ``ml.fit_modality``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ml.card import MODELS_ROOT, sha256_file
from ml.preprocess import foreground_mask, preprocess_grey

MR, CT = "MR", "CT"
NAMES = {MR: "brain MRI", CT: "brain CT"}
FEATURE_VERSION = "1"
CARD_FILE = "modality.json"
MODEL_FILE = "modality.joblib"
CHECKS_ROOT = MODELS_ROOT / "modality"
_SIDE = 96
# Rings of the head, as a fraction of the distance from its edge to its centre.
_RINGS = (0.0, 0.03, 0.07, 0.12, 0.2, 0.35, 0.6, 1.01)


class ModalityLoadError(Exception):
    """The modality check's directory is missing, incomplete or does not match its card."""


def features(grey: np.ndarray) -> np.ndarray:
    """42 numbers describing how intensity is laid out over the head of one greyscale slice."""
    x = preprocess_grey(grey, _SIDE)[..., 0]
    head = ndimage.binary_fill_holes(foreground_mask((x * 255).astype(np.uint8)))
    if head.sum() < 50:
        head = np.ones_like(x, dtype=bool)
    x = np.clip(x / (np.percentile(x[head], 99.5) + 1e-6), 0, 1.2)
    depth = ndimage.distance_transform_edt(head)
    depth = depth / max(float(depth.max()), 1.0)
    out = []
    for lo, hi in zip(_RINGS[:-1], _RINGS[1:], strict=True):
        ring = x[head & (depth >= lo) & (depth < hi)]
        if ring.size == 0:
            ring = np.zeros(1)
        out += [ring.mean(), np.percentile(ring, 90), np.percentile(ring, 10), (ring > 0.85).mean()]
    inside = x[head]
    hist, _ = np.histogram(inside, bins=12, range=(0, 1.2))
    out += list(hist / inside.size)
    out += [head.mean(), inside.std()]
    return np.asarray(out, dtype=np.float32)


@dataclass
class ModalityCheck:
    model_dir: Path
    card: dict
    estimator: object

    @classmethod
    def load(cls, model_dir: Path | str) -> ModalityCheck:
        import json

        import joblib

        model_dir = Path(model_dir)
        try:
            card = json.loads((model_dir / CARD_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ModalityLoadError(f"no readable modality card ({CARD_FILE}) in {model_dir}: {exc}") from exc
        missing = [k for k in ("version", "sha256", "threshold", "feature_version") if k not in card]
        if missing:
            raise ModalityLoadError(f"{model_dir / CARD_FILE} lacks {', '.join(missing)}")
        if card["feature_version"] != FEATURE_VERSION:
            raise ModalityLoadError(
                f"{model_dir} was fitted on feature version {card['feature_version']!r}; "
                f"this code computes version {FEATURE_VERSION!r}"
            )
        path = model_dir / MODEL_FILE
        if not path.is_file() or sha256_file(path) != card["sha256"]:
            raise ModalityLoadError(f"{path} is missing or does not match the sha256 in its card")
        return cls(model_dir, card, joblib.load(path))

    @property
    def version(self) -> str:
        return f"modality/{self.card['version']}"

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    def ct_probability(self, greys: list[np.ndarray]) -> np.ndarray:
        return self.estimator.predict_proba(np.stack([features(g) for g in greys]))[:, 1]

    def reason(self, grey: np.ndarray, expected: str) -> str:
        """Why this slice is not of the ``expected`` modality, or "" when it is."""
        p_ct = float(self.ct_probability([grey])[0])
        return refusal(p_ct, self.threshold, expected)


def refusal(p_ct: float, threshold: float, expected: str) -> str:
    found = CT if p_ct >= threshold else MR
    if found == expected:
        return ""
    # Floor, not round, so a figure never reads above what the check measured.
    return (
        f"looks like {'an' if found == MR else 'a'} {found} slice: modality check "
        f"{np.floor(100 * max(p_ct, 1 - p_ct)) / 100:.0%} {found}; this model reads {NAMES[expected]}"
    )


def default_check_dir(root: Path = CHECKS_ROOT) -> Path:
    """The newest shipped modality check."""
    dirs = sorted(p.parent for p in Path(root).glob(f"*/{CARD_FILE}"))
    if not dirs:
        raise ModalityLoadError(f"no modality check under {root}")
    return dirs[-1]
