"""The two runtimes that run a model's network on a batch of preprocessed images.

The worker (``inference/runtime.py``) serves the model's LiteRT export (``model.tflite``,
written by ``python -m ml.export``) and never imports TensorFlow; its explanation is the class
activation map from the head's weights (``head.npz``), which equals Grad-CAM for a network that
ends in global average pooling and dense layers. Training, evaluation and export may load
``model.keras`` with Keras on TensorFlow (imported lazily, inside ``KerasRuntime.load``), whose
explanation is Grad-CAM. Both give (features, logits) from ``predict`` and (features, logits,
CAM) from ``explain``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ml.card import Card, ModelLoadError, sha256_file

RUNTIMES = ("keras", "litert")
# The exported model's signature: one input, three outputs (ml.export writes them).
LITERT_SIGNATURE = "serving_default"
LITERT_INPUT = "image"
LITERT_OUTPUTS = ("logits", "features", "last_conv")


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
