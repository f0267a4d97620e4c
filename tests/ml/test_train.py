"""A tiny real training run yields a loadable model with a complete card."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from ml.card import find_model_dirs, read_card, sha256_file
from ml.labels import CLASSES
from ml.preprocess import PREPROCESS_VERSION, preprocess
from ml.serve import Classifier
from tests.ml.conftest import BR35H, HEALTHY, REPO_ROOT, TUMOUR_TRAINING


def test_training_prints_epoch_progress_and_writes_a_complete_card(tiny_model):
    model_dir, stdout = tiny_model
    assert "epoch 1/1" in stdout
    card = read_card(model_dir)
    assert card["classes"] == list(CLASSES)
    assert card["preprocessing_version"] == PREPROCESS_VERSION
    assert card["temperature"] > 0 and 0 < card["tumour_threshold"] <= 0.5
    for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "roc_curves", "ece", "reliability"):
        assert key in card["metrics"], key
    assert set(card["baselines"]) == {"nearest_centroid", "pca_logistic_regression"}
    assert len(card["history"]["loss"]) == 1 and "val_loss" in card["history"]
    assert card["training"]["duplicates"]["images"] == sum(card["training"]["split_sizes"].values())
    assert {"br35h", "brain-tumor-mri"} <= set(card["metrics_by_source"])
    # --healthy adds tumour-free scans of another collection as notumor, beside --limit's 10.
    assert card["training"]["healthy_data"] == [str(HEALTHY)]
    assert sum(counts["notumor"] for counts in card["training"]["label_counts"].values()) == 16
    assert card["ood_gate"]["max_feature_distance"] > 0
    # The gate is fitted against generated non-MRI pictures too (--outlier-pictures 40).
    assert "max_outlier_score" in card["ood_gate"] and "outlier_exposure" in card["ood_gate"]
    assert (model_dir / "model.keras").stat().st_size < 30 * 2**20
    # The LiteRT export the worker serves, recorded in the card.
    assert card["litert"]["sha256"] == sha256_file(model_dir / "model.tflite")
    assert card["litert"]["head_sha256"] == sha256_file(model_dir / "head.npz")
    assert card["litert"]["max_difference_from_keras"]["cam"] <= 1e-4
    assert "ai-edge-litert" in card["libraries"]
    assert find_model_dirs(model_dir.parent.parent) == [model_dir]
    json.dumps(card)  # plain JSON all the way down


def test_trained_model_loads_and_gives_calibrated_probabilities(tiny_model, datasets):
    model_dir, _ = tiny_model
    classifier = Classifier.load(model_dir)
    assert classifier.runtime.name == "litert"
    image = sorted((datasets / "brain-tumor-mri" / "Training" / "glioma").glob("*.jpg"))[0]
    features, probs = classifier.predict_arrays(preprocess(image)[None])
    assert probs.shape == (1, len(CLASSES)) and np.isclose(probs.sum(), 1.0)
    assert features.shape[0] == 1
    # A one-epoch model on 50 images may well refuse the image; either way it answers.
    result = classifier.classify(image)
    assert result.outcome in {"classified", "uncertain", "not_mri"} and result.latency_ms > 0


def _train(*args):
    command = [sys.executable, "-m", "ml.train", *map(str, args)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def test_warm_start_continues_a_model_on_the_same_split_only(tiny_model, tmp_path):
    parent, _ = tiny_model
    common = ["--data", TUMOUR_TRAINING, "--data", BR35H, "--healthy", HEALTHY, "--healthy-limit", 6]
    common += ["--epochs", 1, "--limit", 10, "--init", parent]
    common += ["--cache", tmp_path / "cache", "--outlier-pictures", 0, "--resume", tmp_path / "checkpoint"]
    # Another seed draws other images under --limit: the parent's split does not cover them,
    # so it is refused with a message and nothing is written.
    refused = _train(*common, "--seed", 1, "--out", tmp_path / "other")
    assert refused.returncode == 2 and "split differs" in refused.stderr
    assert not (tmp_path / "other").exists()

    # The same images at a larger input: the weights carry over (convolutions and global
    # pooling) and the split is the parent's, not one recomputed from hashes at another size.
    child = tmp_path / "brain-tumour" / "child"
    proc = _train(*common, "--size", 144, "--out", child)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"starting from {parent}" in proc.stdout and "input 128 -> 144 px" in proc.stdout
    assert read_card(child)["input"]["height"] == 144
    card = read_card(child)
    assert card["training"]["initialised_from"] == {
        "version": "tiny",
        "epochs_run": 1,
        "seconds": read_card(parent)["training"]["seconds"],
    }
    assert np.array_equal(np.load(child / "split.npz")["test"], np.load(parent / "split.npz")["test"])


def test_a_warm_start_keeps_its_parents_input_size_unless_told_otherwise(tiny_model):
    from argparse import Namespace

    from ml.fitting import read_parent
    from ml.preprocess import SIZE
    from ml.train import input_size

    parent, _ = tiny_model
    card = read_parent(parent)
    assert input_size(Namespace(size=None), None) == SIZE
    assert input_size(Namespace(size=None), card) == read_card(parent)["input"]["height"]
    assert input_size(Namespace(size=192), card) == 192


def test_refitting_the_gate_uses_every_training_image_healthy_ones_included(tiny_model, tmp_path):
    """python -m ml.fit_gate refits on the model's own training split, --healthy images too."""
    import shutil

    model_dir = tmp_path / "brain-tumour" / "refit"
    shutil.copytree(tiny_model[0], model_dir)
    before = read_card(model_dir)["ood_gate"]
    command = [sys.executable, "-m", "ml.fit_gate", "--model", str(model_dir), "--outlier-pictures", "40"]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = read_card(model_dir)["ood_gate"]
    train_size = read_card(model_dir)["training"]["split_sizes"]["train"]
    assert after["fitted_on"] == before["fitted_on"] == f"{train_size} training images, quantile 0.999"
    # Same model, same training images, same generated pictures: the gate training fitted.
    # (Not a sign check on the outlier limit: it is the slices' 99.9th percentile log-odds
    # + 1.5, negative whenever the regression separates them well.)
    assert "max_outlier_score" in after and after["outlier_exposure"].endswith("C=0.3")
    assert after == pytest.approx(before, abs=2e-3)


def test_training_twice_with_the_same_seed_gives_the_same_model(tiny_model, tiny_model_twin):
    """The seed makes a run repeatable (tests on the session's tiny model rely on it): the same
    command, run beside the tiny model's (tests/ml/conftest.py), gives the same weights."""
    first, second = read_card(tiny_model[0]), read_card(tiny_model_twin[0])
    assert second["history"] == first["history"]
    assert second["ood_gate"] == first["ood_gate"]
    again = tiny_model_twin[0]
    with zipfile.ZipFile(tiny_model[0] / "model.keras") as a, zipfile.ZipFile(again / "model.keras") as b:
        assert a.read("model.weights.h5") == b.read("model.weights.h5")
