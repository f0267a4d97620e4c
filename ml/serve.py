"""Serving: load a shipped model once, classify one image, explain the answer.

The path of one picture: decode, image checks of the out-of-distribution gate, modality
check, preprocessing, the network on one of two runtimes (``ml.runtimes``: the worker's
LiteRT export, or Keras), calibrated probabilities, the gate's feature checks, the card's
thresholds, and the explanation as a heatmap PNG.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ml import card as cards
from ml import gate
from ml.calibration import calibrated_probs
from ml.card import Card, ModelLoadError
from ml.preprocess import PREPROCESS_VERSION, SIZE, decode, head_box, preprocess_grey
from ml.runtimes import RUNTIMES, KerasRuntime, LiteRTRuntime, default_runtime
from ml.tasks import MODALITY_NAMES


@dataclass
class Classification:
    outcome: str  # "classified" | "uncertain" | "not_mri"
    outcome_reason: str  # "" when classified
    label: str | None  # None when not_mri
    confidence: float  # calibrated top probability
    probabilities: dict[str, float]
    tumour_probability: float  # 1 - p(notumor)
    tumour_suspected: bool
    latency_ms: float
    explanation_png: bytes | None = None
    gate: dict = field(default_factory=dict)  # the evidence the OOD gate looked at


class Classifier:
    """One model ready to serve: its card, a runtime running its network, its gate and its
    modality check. ``load`` reads them from a model directory; the constructor takes them
    in memory (a runtime is anything with ``predict(x)`` -> (features, logits) and
    ``explain(x)`` -> (features, logits, class activation maps) on a batch of model inputs)."""

    def __init__(self, model_dir: Path, card: Card, runtime, gate_stats: dict | None, modality_check=None):
        self.model_dir = Path(model_dir)
        self.card = card
        self.labels: list[str] = list(card.classes)
        self.temperature = card.temperature
        self.threshold = card.tumour_threshold
        self.refer_threshold = card.refer_threshold
        self.gate_thresholds = card.ood_gate
        self.gate_stats = gate_stats
        # The modality this model reads ("MR"), asked of ``modality_check`` before anything else.
        self.modality = card.modality
        # How refusals name what this model reads: "MRI" unless the card says CT.
        self.kind = MODALITY_NAMES.get(card.modality or "MR", "MRI")
        self.modality_check = modality_check
        self._notumor = self.labels.index(card.no_finding_class)
        self.size = card.size
        # KerasRuntime or LiteRTRuntime: (features, logits) and (features, logits, CAM) as arrays.
        self.runtime = runtime

    @classmethod
    def load(
        cls, model_dir: Path | str, runtime: str | None = None, threads: int | None = None
    ) -> Classifier:
        """The model in ``model_dir`` on ``runtime`` ("keras" or "litert"; by default LiteRT
        when the directory holds its export). ``threads``: the LiteRT interpreter's threads
        (default: its own choice); Keras takes TensorFlow's process-wide setting."""
        model_dir = Path(model_dir)
        card = Card.load(model_dir)
        if card.preprocessing_version != PREPROCESS_VERSION:
            raise ModelLoadError(
                f"{model_dir} was trained with preprocessing version {card.preprocessing_version!r}; "
                f"this code has version {PREPROCESS_VERSION!r}: retrain or check out the matching code"
            )
        runtime = runtime or default_runtime(card)
        if runtime == "litert":
            engine = LiteRTRuntime.load(model_dir, card, threads)
        elif runtime == "keras":
            engine = KerasRuntime.load(model_dir, card)
        else:
            raise ModelLoadError(f"unknown runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
        gate_stats = None
        if card.ood_gate is not None:
            gate_path = model_dir / card.ood_gate_file
            if not gate_path.is_file():
                raise ModelLoadError(f"{gate_path} missing: its card has an ood_gate (python -m ml.fit_gate)")
            with np.load(gate_path) as data:
                gate_stats = {k: data[k] for k in data.files}
        return cls(model_dir, card, engine, gate_stats, _load_modality_check(model_dir, card))

    @property
    def version(self) -> str:
        return self.card.label

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pooled features, logits) of the network for preprocessed images (n, size, size, 1)."""
        return self.runtime.predict(np.asarray(batch, dtype=np.float32))

    def explain(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``forward`` and the top class's activation map (n, h, w) per image: Grad-CAM."""
        return self.runtime.explain(np.asarray(batch, dtype=np.float32))

    def predict_arrays(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features, calibrated probabilities) for preprocessed images (n, size, size, 1)."""
        feats, logits = self.forward(batch)
        return feats, calibrated_probs(logits, self.temperature)

    def score_files(self, paths: list, batch: int = 128):
        """Yield (image statistics, features, calibrated probabilities) per batch of files (or
        arrays: anything ``decode`` takes): the serving path in bulk, for evaluation and for
        fitting the gate."""
        for start in range(0, len(paths), batch):
            stats, greys = [], []
            for path in paths[start : start + batch]:
                grey, colour = decode(path)
                stats.append(gate.image_stats(grey, colour))
                greys.append(grey)
            feats, probs = self.predict_arrays(np.stack([preprocess_grey(g, self.size) for g in greys]))
            yield stats, feats, probs, self.modality_reasons(greys)

    def modality_reasons(self, greys: list[np.ndarray]) -> list[str]:
        """Per slice, why it is not of the modality this model reads ("" when it is)."""
        if self.modality_check is None:
            return [""] * len(greys)
        from ml.modality import refusal

        p_ct = self.modality_check.ct_probability(greys)
        return [refusal(float(p), self.modality_check.threshold, self.modality) for p in p_ct]

    def classify(self, image, explain: bool = True) -> Classification:
        started = time.perf_counter()
        grey, colour = decode(image)
        stats = gate.image_stats(grey, colour)
        evidence: dict = {"image": stats.as_dict()}
        reason = gate.image_reason(stats, self.gate_thresholds, self.kind) if self.gate_thresholds else ""
        if not reason and self.modality_check is not None:
            p_ct = float(self.modality_check.ct_probability([grey])[0])
            evidence["modality"] = {"ct_probability": round(p_ct, 4), "check": self.modality_check.version}
            from ml.modality import refusal

            reason = refusal(p_ct, self.modality_check.threshold, self.modality)
        if reason:
            return self._not_mri(reason, evidence, started)
        x = preprocess_grey(grey, self.size)[None]
        cam = None
        if explain:
            feats, logits, cam = self.explain(x)
            cam = cam[0]
        else:
            feats, logits = self.forward(x)
        probs = calibrated_probs(logits, self.temperature)[0]
        if self.gate_thresholds and self.gate_stats is not None:
            evidence |= gate.feature_evidence(feats, self.gate_stats)[0]
            reason = gate.feature_reason(evidence, self.gate_thresholds, self.kind)
            if reason:
                return self._not_mri(reason, evidence, started)
        top = int(probs.argmax())
        confidence = float(probs[top])
        tumour = float(1.0 - probs[self._notumor])
        outcome, outcome_reason = "classified", ""
        if confidence < self.refer_threshold:
            outcome = "uncertain"
            outcome_reason = cards.refer_reason(confidence, self.refer_threshold)
        png = heatmap_png(cam, grey) if cam is not None else None
        return Classification(
            outcome=outcome,
            outcome_reason=outcome_reason,
            label=self.labels[top],
            confidence=confidence,
            probabilities={name: float(p) for name, p in zip(self.labels, probs, strict=False)},
            tumour_probability=tumour,
            tumour_suspected=tumour >= self.threshold,
            latency_ms=(time.perf_counter() - started) * 1000,
            explanation_png=png,
            gate=evidence,
        )

    def _not_mri(self, reason: str, evidence: dict, started: float) -> Classification:
        return Classification(
            outcome="not_mri",
            outcome_reason=f"not classified: not a brain {self.kind} ({reason})",
            label=None,
            confidence=0.0,
            probabilities={},
            tumour_probability=0.0,
            tumour_suspected=False,
            latency_ms=(time.perf_counter() - started) * 1000,
            gate=evidence,
        )


def _load_modality_check(model_dir: Path, card: Card):
    """The modality check a card asks for: the version it pins (``modality_check``, relative to
    the models root) or else the newest shipped one; None for cards that name no modality."""
    if not card.modality:
        return None
    from ml.modality import CHECKS_ROOT, ModalityCheck, ModalityLoadError, default_check_dir

    try:
        pinned = card.modality_check
        if pinned:
            path = model_dir.parent.parent / pinned
            if not path.is_dir():
                path = CHECKS_ROOT.parent / pinned
        else:
            path = default_check_dir()
        return ModalityCheck.load(path)
    except ModalityLoadError as exc:
        raise ModelLoadError(f"{model_dir} needs a modality check: {exc}") from exc


# Perceptually ordered colour ramp (dark purple -> red -> yellow), like matplotlib's inferno.
_RAMP = np.array(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=np.float32,
)


def cam_on_image(
    cam: np.ndarray, grey_shape: tuple[int, int], box: tuple[int, int, int, int], scale: float = 1.0
) -> np.ndarray:
    """Map a low-resolution CAM over the model's square crop back onto the original image
    (optionally scaled down by ``scale``): values in [0, 1], zero outside the head box."""
    h, w = (max(1, round(v * scale)) for v in grey_shape)
    top, bottom, left, right = (round(v * scale) for v in box)
    bottom, right = max(bottom, top + 1), max(right, left + 1)
    ch, cw = bottom - top, right - left
    side = max(ch, cw)
    cam = np.asarray(cam, dtype=np.float32)
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else np.zeros_like(cam)
    square = np.asarray(Image.fromarray(cam).resize((side, side), Image.Resampling.BILINEAR))
    y0, x0 = (side - ch) // 2, (side - cw) // 2
    full = np.zeros((h, w), dtype=np.float32)
    full[top:bottom, left:right] = square[y0 : y0 + ch, x0 : x0 + cw]
    return np.clip(full, 0.0, 1.0)


def heatmap_png(cam: np.ndarray, grey: np.ndarray, max_side: int = 128) -> bytes:
    """RGBA PNG with the input's aspect ratio: colour and opacity follow the heat. Pages
    stretch it over the scan; the CAM is smooth, so a small picture loses nothing."""
    scale = min(1.0, max_side / max(grey.shape))
    heat = cam_on_image(cam, grey.shape, head_box(grey), scale)
    pos = heat * (len(_RAMP) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    rgb = _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac
    alpha = (heat**0.8 * 220)[..., None]
    rgba = np.concatenate([rgb, alpha], axis=-1).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


__all__ = ["Classification", "Classifier", "ModelLoadError", "SIZE"]
