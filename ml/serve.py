"""Serving: load a shipped model once, classify one image, explain the answer.

Two runtimes run the same network. The worker (``inference/runtime.py``) serves the model's
LiteRT export (``model.tflite``, written by ``python -m ml.export``) and never imports
TensorFlow; its explanation is the class activation map from the head's weights
(``head.npz``), which equals Grad-CAM for a network that ends in global average pooling and
dense layers. Training, evaluation and export may load ``model.keras`` with Keras on
TensorFlow (imported lazily, inside ``KerasRuntime.load``), whose explanation is Grad-CAM.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ml import card as cards
from ml import gate
from ml.calibration import calibrated_probs
from ml.card import Card, ModelLoadError, sha256_file
from ml.preprocess import PREPROCESS_VERSION, SIZE, decode, head_box, preprocess_grey

RUNTIMES = ("keras", "litert")
# The exported model's signature: one input, three outputs (ml.export writes them).
LITERT_SIGNATURE = "serving_default"
LITERT_INPUT = "image"
LITERT_OUTPUTS = ("logits", "features", "last_conv")


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


def default_runtime(card: Card) -> str:
    """LiteRT when the model directory holds its export (the card says so), else Keras."""
    return "litert" if card.litert else "keras"


class Head:
    """The layers after global average pooling (dense layers, ReLU or linear), as arrays:
    logits from pooled features, and the gradient of one class's logit with respect to them,
    without TensorFlow. Written by ``ml.export`` as ``head.npz``."""

    ACTIVATIONS = ("linear", "relu")

    def __init__(self, kernels: list[np.ndarray], biases: list[np.ndarray], activations: list[str]):
        unknown = set(activations) - set(self.ACTIVATIONS)
        if unknown or not kernels or not len(kernels) == len(biases) == len(activations):
            raise ValueError(f"a head is dense layers with activations {self.ACTIVATIONS}, not {activations}")
        self.kernels = [np.asarray(k, dtype=np.float32) for k in kernels]
        self.biases = [np.asarray(b, dtype=np.float32) for b in biases]
        self.activations = list(activations)

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path, allow_pickle=False) as data:
            activations = [str(a) for a in data["activations"]]
            n = len(activations)
            return cls(
                [data[f"kernel_{i}"] for i in range(n)], [data[f"bias_{i}"] for i in range(n)], activations
            )

    def save(self, path: Path) -> None:
        arrays = {"activations": np.array(self.activations)}
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            arrays[f"kernel_{i}"], arrays[f"bias_{i}"] = kernel, bias
        with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to the name
            np.savez(fh, **arrays)

    def _forward(self, features: np.ndarray) -> list[np.ndarray]:
        pre, h = [], np.asarray(features, dtype=np.float32)
        for kernel, bias, activation in zip(self.kernels, self.biases, self.activations, strict=True):
            z = h @ kernel + bias
            pre.append(z)
            h = np.maximum(z, 0) if activation == "relu" else z
        return pre

    def logits(self, features: np.ndarray) -> np.ndarray:
        return self._forward(features)[-1]

    def class_gradient(self, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """d logit[class] / d features, per row: for one dense layer, the class's weights."""
        pre = self._forward(features)
        grad = np.zeros_like(pre[-1])
        grad[np.arange(len(grad)), classes] = 1.0
        for kernel, activation, z in reversed(list(zip(self.kernels, self.activations, pre, strict=True))):
            if activation == "relu":
                grad = grad * (z > 0)
            grad = grad @ kernel.T
        return grad


def class_activation_map(activations: np.ndarray, head: Head, features: np.ndarray, classes) -> np.ndarray:
    """Grad-CAM without a backward pass through the network: after global average pooling
    each location of a channel gets 1/(h*w) of the pooled feature's gradient, so Grad-CAM's
    channel weights are the head's gradient divided by the map size (for one dense layer,
    the class's weights / (h*w)), and CAM = ReLU(sum_k weight_k * A_k)."""
    _, h, w, _ = activations.shape
    weights = head.class_gradient(features, np.asarray(classes)) / (h * w)
    return np.maximum(np.einsum("nhwk,nk->nhw", activations, weights.astype(np.float32)), 0.0)


class LiteRTRuntime:
    """The model's LiteRT export on the LiteRT interpreter (ai-edge-litert): no TensorFlow."""

    name = "litert"

    def __init__(self, model_path: Path, head: Head, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
        self._runner = self.interpreter.get_signature_runner(LITERT_SIGNATURE)
        self.head = head
        # One interpreter per model: calls from several threads take turns.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path, card: Card, threads: int | None = None) -> LiteRTRuntime:
        export = card.litert
        if export is None:
            raise ModelLoadError(f"{model_dir} has no LiteRT export: run python -m ml.export {model_dir}")
        files = [(export.file, export.sha256), (export.head_file, export.head_sha256)]
        for name, digest in files:
            path = model_dir / name
            if not path.is_file():
                raise ModelLoadError(f"{path} missing: run python -m ml.export {model_dir}")
            if sha256_file(path) != digest:
                raise ModelLoadError(f"{path} does not match the sha256 in its card")
        try:
            import ai_edge_litert  # noqa: F401
        except ImportError:
            raise ModelLoadError(
                "the LiteRT runtime needs ai-edge-litert (pip install -r requirements.txt)"
            ) from None
        model_path = model_dir / export.file
        try:
            runtime = cls(model_path, Head.load(model_dir / export.head_file), threads)
            outputs = runtime.interpreter.get_signature_list()[LITERT_SIGNATURE]["outputs"]
        except Exception as exc:  # the interpreter raises RuntimeError/ValueError for a foreign file
            raise ModelLoadError(f"cannot load {model_path}: {exc}") from exc
        missing = sorted(set(LITERT_OUTPUTS) - set(outputs))
        if missing:
            raise ModelLoadError(f"{model_path} lacks the outputs {missing}: export it again")
        return runtime

    def run(self, x: np.ndarray) -> dict:
        """Every output of the export (``LITERT_OUTPUTS``) for a batch of model inputs."""
        with self._lock:
            return self._runner(**{LITERT_INPUT: np.ascontiguousarray(x, dtype=np.float32)})

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.run(x)
        return out["features"], out["logits"]

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self.run(x)
        feats, logits = out["features"], out["logits"]
        cam = class_activation_map(out["last_conv"], self.head, feats, logits.argmax(axis=-1))
        return feats, logits, cam


class KerasRuntime:
    """``model.keras`` with Keras on TensorFlow; the explanation is Grad-CAM, differentiated
    through the head. For training, evaluation and export; the worker never loads it."""

    name = "keras"

    def __init__(self, model, size: int):
        import keras
        import tensorflow as tf

        from ml.model import FEATURES, LAST_CONV

        self.model = model
        conv = model.get_layer(LAST_CONV).output
        features = model.get_layer(FEATURES).output
        # One graph from the input to (conv activations, features, logits); Grad-CAM then
        # differentiates only the head (pooling, dropout, dense) with respect to the
        # activations, so explaining costs no full backward pass.
        self._body = keras.Model(model.inputs, [conv, features, model.outputs[0]])
        head_layers = model.layers[model.layers.index(model.get_layer(FEATURES)) :]
        spec = tf.TensorSpec([None, size, size, 1], tf.float32)

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def predict(x):
            _, feats, logits = self._body(x, training=False)
            return feats, logits

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def explain(x):
            acts, feats, logits = self._body(x, training=False)
            with tf.GradientTape() as tape:
                tape.watch(acts)
                y = acts
                for layer in head_layers:
                    y = layer(y, training=False)
                top = tf.argmax(y, axis=-1)
                score = tf.gather(y, top, axis=1, batch_dims=1)
            grads = tape.gradient(score, acts)
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # Grad-CAM
            cam = tf.nn.relu(tf.reduce_sum(weights * acts, axis=-1))
            return feats, logits, cam

        self._predict = predict
        self._explain = explain
        # Trace both graphs now, so the first scan is not slow.
        dummy = tf.zeros([1, size, size, 1])
        self._predict(dummy)
        self._explain(dummy)

    @classmethod
    def load(cls, model_dir: Path, card: Card) -> KerasRuntime:
        model_path = model_dir / card.model_file
        if not model_path.is_file():
            raise ModelLoadError(f"model file missing: {model_path}")
        if sha256_file(model_path) != card.sha256:
            raise ModelLoadError(f"{model_path} does not match the sha256 in its card")
        try:
            import keras

            import ml.model  # noqa: F401  registers the custom layer for deserialisation
        except ImportError:
            raise ModelLoadError(
                "the keras runtime needs TensorFlow and Keras (pip install -r requirements-ml.txt)"
            ) from None
        try:
            model = keras.saving.load_model(model_path, compile=False)
        except Exception as exc:  # Keras raises many types for a corrupt or foreign file
            raise ModelLoadError(f"cannot load {model_path}: {exc}") from exc
        return cls(model, card.size)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, logits = self._predict(np.asarray(x, dtype=np.float32))
        return feats.numpy(), logits.numpy()

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        feats, logits, cam = self._explain(np.asarray(x, dtype=np.float32))
        return feats.numpy(), logits.numpy(), cam.numpy()


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
        reason = gate.image_reason(stats, self.gate_thresholds) if self.gate_thresholds else ""
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
            reason = gate.feature_reason(evidence, self.gate_thresholds)
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
            outcome_reason=f"not classified: not a brain MRI ({reason})",
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
