"""The shipped models on LiteRT (what the worker serves) against Keras on TensorFlow: the same
outcomes on every held-out image, and the explanation from the head's weights equals Grad-CAM."""

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from ml.card import LITERT_FILE, MODELS_ROOT, Card, ModelLoadError, default_model_dir, read_card
from ml.evaluate import split_names
from ml.labels import CLASSES, NOTUMOR, index_folder
from ml.preprocess import preprocess
from ml.serve import Classifier
from tests.ml.conftest import REPO_ROOT

SHIPPED = sorted(p.parent for p in MODELS_ROOT.glob("brain-tumour/*/model.json"))


@pytest.fixture(scope="module", params=SHIPPED, ids=lambda p: p.name)
def runtimes(request):
    """(keras, litert) classifiers of one shipped model."""
    return Classifier.load(request.param, runtime="keras"), Classifier.load(request.param, runtime="litert")


def _held_out(model_dir):
    """Every image of the model's internal test split, from the folders its card names."""
    card = read_card(model_dir)
    items = [it for folder in card["training"]["data"] for it in index_folder(REPO_ROOT / folder)]
    for folder in card["training"].get("healthy_data", []):
        items += index_folder(REPO_ROOT / folder, label=NOTUMOR)
    return [it.path for it, name in zip(items, split_names(items, model_dir), strict=True) if name == "test"]


def test_shipped_models_default_to_their_litert_export():
    for model_dir in SHIPPED:
        assert Classifier.load(model_dir).runtime.name == "litert"
        assert (model_dir / LITERT_FILE).stat().st_size < 5 * 2**20


def test_both_runtimes_give_identical_outcomes_on_every_held_out_image(runtimes, datasets):
    """Every held-out image for the default model; every fourth for the older one a steward can
    switch back to (the same export code, and a minute of the suite saved)."""
    keras, litert = runtimes
    paths = _held_out(keras.model_dir)
    assert len(paths) == read_card(keras.model_dir)["training"]["split_sizes"]["test"]
    if keras.model_dir != default_model_dir():
        paths = paths[::4]
    differ, largest = [], 0.0
    for path in paths:
        a, b = keras.classify(path, explain=False), litert.classify(path, explain=False)
        if (a.label, a.outcome, a.tumour_suspected) != (b.label, b.outcome, b.tumour_suspected):
            differ.append((path.name, (a.label, a.outcome, a.tumour_suspected), (b.label, b.outcome)))
        if a.probabilities:
            largest = max(largest, max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities))
    assert differ == []
    assert largest < 1e-4


def test_explanation_from_the_head_equals_grad_cam_on_real_images(runtimes, datasets):
    keras, litert = runtimes
    folder = datasets / "brain-tumor-mri" / "Training"
    paths = [sorted((folder / cls).glob("*.jpg"))[i * 97] for cls in CLASSES for i in range(3)]
    x = np.stack([preprocess(p) for p in paths])
    for i in range(len(x)):
        _, keras_logits, grad_cam = keras.explain(x[i : i + 1])
        _, litert_logits, cam = litert.explain(x[i : i + 1])
        assert keras_logits.argmax() == litert_logits.argmax()
        assert grad_cam.max() > 0.01  # a real map, not two empty ones
        np.testing.assert_allclose(cam, grad_cam, rtol=0, atol=1e-4)


def test_explanation_png_is_the_same_picture(runtimes, datasets):
    keras, litert = runtimes
    path = sorted((datasets / "brain-tumor-mri" / "Training" / "meningioma").glob("*.jpg"))[5]
    pictures = [
        np.asarray(Image.open(io.BytesIO(c.classify(path).explanation_png)), dtype=int) for c in runtimes
    ]
    assert pictures[0].shape == pictures[1].shape
    assert np.abs(pictures[0] - pictures[1]).max() <= 1  # rounding to 8 bits at most


@pytest.fixture
def shipped_copy(tmp_path):
    target = tmp_path / "brain-tumour" / SHIPPED[-1].name
    shutil.copytree(SHIPPED[-1], target)
    return target


def test_a_model_without_its_export_is_refused_on_litert_with_the_command_to_run(shipped_copy):
    (shipped_copy / LITERT_FILE).unlink()
    with pytest.raises(ModelLoadError, match=f"python -m ml.export {shipped_copy}"):
        Classifier.load(shipped_copy, runtime="litert")
    Card.load(shipped_copy).replace(litert=None).save(shipped_copy)
    with pytest.raises(ModelLoadError, match="has no LiteRT export"):
        Classifier.load(shipped_copy, runtime="litert")
    # Without an export the directory still loads, with Keras.
    assert Classifier.load(shipped_copy).runtime.name == "keras"


def test_a_changed_export_is_refused(shipped_copy):
    data = bytearray((shipped_copy / LITERT_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (shipped_copy / LITERT_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match the sha256"):
        Classifier.load(shipped_copy)


def test_an_unknown_runtime_is_refused(shipped_copy):
    with pytest.raises(ModelLoadError, match="unknown runtime 'onnx'"):
        Classifier.load(shipped_copy, runtime="onnx")
