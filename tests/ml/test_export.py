"""python -m ml.export: a model directory gains its LiteRT export and head, checked against Keras."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ml.card import HEAD_FILE, LITERT_FILE, MODELS_ROOT, Card, ModelInput, sha256_file
from ml.export import ExportError, export, verification_inputs
from ml.serve import Classifier
from tests.ml.conftest import REPO_ROOT, make_card

SHIPPED = MODELS_ROOT / "brain-tumour" / "2026.11.24"


def _export(*model_dirs):
    return subprocess.run(
        [sys.executable, "-m", "ml.export", *map(str, model_dirs)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_export_writes_the_litert_model_and_head_and_records_them_in_the_card(tmp_path):
    model_dir = tmp_path / "brain-tumour" / "v1"
    shutil.copytree(SHIPPED, model_dir, ignore=shutil.ignore_patterns(LITERT_FILE, HEAD_FILE))
    card = Card.load(model_dir).replace(litert=None)
    card.save(model_dir)

    proc = _export(model_dir)

    assert proc.returncode == 0, proc.stderr[-3000:]
    entry = Card.load(model_dir).litert
    assert json.loads(proc.stdout)[str(model_dir)] == entry.to_json()
    assert entry.sha256 == sha256_file(model_dir / LITERT_FILE)
    assert entry.head_sha256 == sha256_file(model_dir / HEAD_FILE)
    assert entry.outputs == ("logits", "features", "last_conv") and entry.head == ("linear",)
    assert "tensorflow" in entry.converter and entry.verified_with.startswith("ai-edge-litert ")
    assert entry.max_difference_from_keras["cam"] <= 1e-4
    assert (model_dir / LITERT_FILE).stat().st_size < 5 * 2**20
    assert sorted(p.name for p in model_dir.iterdir() if p.name.startswith(".")) == []
    # The rest of the card is untouched, and the export computes what the shipped one does. Not
    # byte for byte: the converter's flatbuffer differs between machines with the same pins
    # (seen: the shipped sha256 on the machine that exported it, another on a later one).
    assert Card.load(model_dir).replace(litert=None) == card
    exported, shipped = Classifier.load(model_dir), Classifier.load(SHIPPED)
    assert exported.runtime.name == shipped.runtime.name == "litert"
    x = verification_inputs(card.input.height)
    for ours, theirs in zip(exported.explain(x), shipped.explain(x), strict=True):
        assert np.allclose(ours, theirs, atol=1e-5), np.abs(ours - theirs).max()


def test_a_missing_model_directory_is_a_one_line_error(tmp_path):
    proc = _export(tmp_path / "nowhere")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'}: no model card (model.json) in {tmp_path / 'nowhere'}"
    ]


def _small_model(model_dir, head):
    """An untrained network with the shipped model's layer names, 32 px input, ``head`` after
    the global average pooling."""
    import keras

    from ml.model import FEATURES, LAST_CONV

    inputs = keras.Input((32, 32, 1), name="image")
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same")(inputs)
    x = keras.layers.ReLU(name=LAST_CONV)(x)
    x = keras.layers.GlobalAveragePooling2D(name=FEATURES)(x)
    for layer in head:
        x = layer(x)
    model_dir.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    keras.Model(inputs, x).save(model_dir / "model.keras")
    card = make_card(sha256=sha256_file(model_dir / "model.keras"), input=ModelInput(height=32, width=32))
    card.save(model_dir)
    return card


def test_a_deeper_head_keeps_the_explanation_exact(tmp_path):
    import keras

    head = [keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(0.3), keras.layers.Dense(4)]
    _small_model(tmp_path / "m", head)

    entry = export(tmp_path / "m")

    assert entry.head == ("relu", "linear")
    keras_runtime = Classifier.load(tmp_path / "m", runtime="keras")
    litert = Classifier.load(tmp_path / "m", runtime="litert")
    x = np.random.default_rng(1).random((6, 32, 32, 1), dtype=np.float32)
    for i in range(len(x)):
        _, _, grad_cam = keras_runtime.explain(x[i : i + 1])
        _, _, cam = litert.explain(x[i : i + 1])
        np.testing.assert_allclose(cam, grad_cam, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "head",
    [
        lambda keras: [keras.layers.Dense(4, activation="softmax")],
        lambda keras: [keras.layers.LayerNormalization(), keras.layers.Dense(4)],
        lambda keras: [keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(4)],
    ],
    ids=["softmax-output", "normalisation", "tanh"],
)
def test_a_head_whose_explanation_would_not_be_exact_is_refused_and_nothing_is_written(tmp_path, head):
    import keras

    card = _small_model(tmp_path / "m", head(keras))
    with pytest.raises(ExportError):
        export(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.keras"]
    assert Card.load(tmp_path / "m") == card


def test_verification_inputs_are_reproducible_model_inputs():
    x = verification_inputs(64)
    assert x.shape == (16, 64, 64, 1) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    assert np.array_equal(x, verification_inputs(64))
