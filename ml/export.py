"""Export a trained model for the worker: ``model.tflite`` (LiteRT) and ``head.npz`` beside it.

    python -m ml.export ml/models/brain-tumour/2026.11.24 [MODEL_DIR ...]

The LiteRT model takes the preprocessed image (``image``) and gives the logits, the pooled
features (for the out-of-distribution gate) and the last convolution's activations (for the
explanation). ``head.npz`` holds the layers after the pooling, from which the worker computes
the explanation without a backward pass (``ml.runtimes.class_activation_map``). Nothing is written
unless the export agrees with Keras, its explanation with Grad-CAM, on reproducible inputs; the
card then records both files' sha256, the converter's version and the largest differences.
``ml.train`` calls this for every model it writes.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ml import card as cards
from ml import cli
from ml.card import HEAD_FILE, LITERT_FILE, Card, LiteRTExport, ModelLoadError, sha256_file
from ml.runtimes import (
    LITERT_INPUT,
    LITERT_OUTPUTS,
    Head,
    KerasRuntime,
    LiteRTRuntime,
    class_activation_map,
)

# Largest differences from Keras that an export may show on the verification inputs (float32
# round-off is about 1e-5 on the logits; a wrong graph or head is off by far more).
TOLERANCE = {"logits": 1e-3, "features": 1e-3, "head_logits": 1e-4, "cam": 1e-4}


class ExportError(ValueError):
    """The model cannot be exported, or its export does not agree with it."""


def head_of(model) -> Head:
    """The layers after global average pooling as a ``Head``, if they are dense layers
    (linear or ReLU; dropout is the identity when serving): then the class activation map
    equals Grad-CAM. Any other head is refused, since its explanation would not be exact."""
    import keras

    from ml.model import FEATURES, LAST_CONV

    try:
        pooling, last_conv = model.get_layer(FEATURES), model.get_layer(LAST_CONV)
    except ValueError as exc:
        raise ExportError(f"the model has no {FEATURES!r} or {LAST_CONV!r} layer: {exc}") from exc
    if not isinstance(pooling, keras.layers.GlobalAveragePooling2D) or pooling.input is not last_conv.output:
        raise ExportError(f"{FEATURES!r} must be the global average pooling of {LAST_CONV!r}")
    kernels, biases, activations = [], [], []
    previous = pooling
    for layer in model.layers[model.layers.index(pooling) + 1 :]:
        if layer.input is not previous.output:
            raise ExportError(f"the head is not a chain: {layer.name!r} does not follow {previous.name!r}")
        previous = layer
        relu = isinstance(layer, keras.layers.ReLU) and not (
            layer.max_value or layer.negative_slope or layer.threshold
        )
        activation = getattr(layer, "activation", None)
        if isinstance(layer, keras.layers.Activation):
            relu = activation is keras.activations.relu
            if activation is keras.activations.linear:
                continue
        if isinstance(layer, keras.layers.Dropout):
            continue
        if isinstance(layer, keras.layers.Dense):
            names = {keras.activations.linear: "linear", keras.activations.relu: "relu"}
            if activation not in names:
                raise ExportError(f"dense layer {layer.name!r} has an activation other than linear or ReLU")
            kernel, bias = layer.kernel.numpy(), (layer.bias.numpy() if layer.use_bias else None)
            kernels.append(kernel)
            biases.append(bias if bias is not None else np.zeros(kernel.shape[1], np.float32))
            activations.append(names[activation])
        elif relu and activations and activations[-1] == "linear":
            activations[-1] = "relu"
        else:
            raise ExportError(
                f"head layer {layer.name!r} ({type(layer).__name__}) is not dense, dropout or ReLU: "
                "the explanation from the head's weights would not equal Grad-CAM"
            )
    if previous.output is not model.outputs[0] or not kernels or activations[-1] != "linear":
        raise ExportError("the model must end in a dense layer giving the logits")
    return Head(kernels, biases, activations)


def convert(model, size: int) -> bytes:
    """The LiteRT flatbuffer of ``model`` with the outputs ``LITERT_OUTPUTS``, through a
    SavedModel (the converter's most reliable route)."""
    import keras
    import tensorflow as tf

    from ml.model import FEATURES, LAST_CONV

    outputs = dict(
        zip(
            LITERT_OUTPUTS,
            (model.outputs[0], model.get_layer(FEATURES).output, model.get_layer(LAST_CONV).output),
            strict=True,
        )
    )
    # Named, so that the tensor names in the flatbuffer (and its sha256) do not depend on how
    # many models this process built before.
    serving = keras.Model(model.inputs, outputs, name="brainscan_serving")
    spec = tf.TensorSpec([None, size, size, 1], tf.float32, name=LITERT_INPUT)
    with tempfile.TemporaryDirectory(prefix="brainscan-export-") as tmp:
        serving.export(tmp, format="tf_saved_model", verbose=False, input_signature=[spec])
        return tf.lite.TFLiteConverter.from_saved_model(tmp).convert()


def verification_inputs(size: int, n: int = 16, seed: int = 0) -> np.ndarray:
    """Reproducible model inputs: smooth blobs in a disc (head-like) and plain noise."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    disc = (np.hypot(xx, yy) < 0.85).astype(np.float32)
    blobs = ndimage.gaussian_filter(rng.random((n // 2, size, size)), sigma=(0, 4, 4))
    low, high = blobs.min(axis=(1, 2), keepdims=True), blobs.max(axis=(1, 2), keepdims=True)
    blobs = (blobs - low) / (high - low) * disc
    noise = rng.random((n - n // 2, size, size))
    return np.concatenate([blobs, noise]).astype(np.float32)[..., None]


def differences(keras_runtime: KerasRuntime, litert: LiteRTRuntime, x: np.ndarray) -> dict:
    """Largest absolute differences of the LiteRT export (and its head) from Keras on ``x``;
    the CAM is compared with Grad-CAM for Keras' top class, so a near tie cannot hide a flaw."""
    feats, logits, gradcam = keras_runtime.explain(x)
    out = litert.run(x)
    cam = class_activation_map(out["last_conv"], litert.head, out["features"], logits.argmax(axis=-1))
    return {
        "logits": float(np.abs(out["logits"] - logits).max()),
        "features": float(np.abs(out["features"] - feats).max()),
        "head_logits": float(np.abs(litert.head.logits(feats) - logits).max()),
        "cam": float(np.abs(cam - gradcam).max()),
    }


def export(model_dir: Path | str) -> LiteRTExport:
    """Write ``model.tflite`` and ``head.npz`` into ``model_dir`` and record them in its
    card; returns the card's ``litert`` entry. Raises ExportError, ModelLoadError or
    FileNotFoundError with a message for the user; on error nothing is written."""
    from importlib.metadata import version

    model_dir = Path(model_dir)
    if not (model_dir / cards.CARD_FILE).is_file():
        raise FileNotFoundError(f"no model card ({cards.CARD_FILE}) in {model_dir}")
    card = Card.load(model_dir)
    import tensorflow as tf

    size = card.size
    keras_runtime = KerasRuntime.load(model_dir, card)
    head = head_of(keras_runtime.model)
    flatbuffer = convert(keras_runtime.model, size)
    tmp_model, tmp_head = model_dir / f".{LITERT_FILE}.tmp", model_dir / f".{HEAD_FILE}.tmp"
    try:
        tmp_model.write_bytes(flatbuffer)
        head.save(tmp_head)
        litert = LiteRTRuntime(tmp_model, Head.load(tmp_head), threads=1)
        found = differences(keras_runtime, litert, verification_inputs(size))
        del litert
        too_far = {k: v for k, v in found.items() if not v <= TOLERANCE[k]}
        if too_far:
            raise ExportError(f"{model_dir}: the export differs from Keras by {too_far} (limits {TOLERANCE})")
        for tmp in (tmp_model, tmp_head):
            os.chmod(tmp, 0o644)
        os.replace(tmp_model, model_dir / LITERT_FILE)
        os.replace(tmp_head, model_dir / HEAD_FILE)
    finally:
        tmp_model.unlink(missing_ok=True)
        tmp_head.unlink(missing_ok=True)
    entry = LiteRTExport(
        file=LITERT_FILE,
        sha256=sha256_file(model_dir / LITERT_FILE),
        bytes=(model_dir / LITERT_FILE).stat().st_size,
        input=LITERT_INPUT,
        outputs=tuple(LITERT_OUTPUTS),
        head_file=HEAD_FILE,
        head_sha256=sha256_file(model_dir / HEAD_FILE),
        head=tuple(head.activations),
        explanation=(
            "class activation map from the head's weights (head.npz); equals Grad-CAM, since the "
            "network ends in global average pooling and dense layers"
        ),
        converter=f"tf.lite.TFLiteConverter.from_saved_model, tensorflow {tf.__version__}",
        verified_with=f"ai-edge-litert {version('ai-edge-litert')}",
        max_difference_from_keras={k: float(f"{v:.3g}") for k, v in found.items()},
        exported_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    card.replace(litert=entry).save(model_dir)
    return entry


def main(argv=None) -> int:
    parser = cli.parser("ml.export", __doc__)
    parser.add_argument("model_dirs", type=Path, nargs="+", metavar="MODEL_DIR")
    cli.add_json_argument(parser, "report")
    args = parser.parse_args(argv)
    report = {}
    for model_dir in args.model_dirs:
        try:
            report[str(model_dir)] = export(model_dir).to_json()
        except (ExportError, ModelLoadError, FileNotFoundError, ValueError) as exc:
            return cli.fail(f"{model_dir}: {exc}")
    cli.print_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
