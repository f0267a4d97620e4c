import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ml.card import sha256_file
from ml.evaluate import warnings_against_card
from tests.ml.conftest import REPO_ROOT, make_card

MULTICLASS_KEYS = {
    "n",
    "labels",
    "accuracy",
    "macro_f1",
    "per_class",
    "confusion_matrix",
    "tumour_recall",
    "tumour_specificity",
    "roc_auc",
    "ece",
}
BINARY_KEYS = {"n", "accuracy", "f1", "tumour_recall", "tumour_specificity"}


def _evaluate(model_dir, tmp_path, *args):
    out = tmp_path / "metrics.json"
    proc = subprocess.run(
        [sys.executable, "-m", "ml.evaluate", "--model", str(model_dir), "--json", str(out), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_four_class_folder_gets_the_documented_json(tiny_model, datasets, tmp_path):
    result = _evaluate(
        tiny_model[0], tmp_path, "--data", str(datasets / "brain-tumor-mri" / "Training"), "--limit", "40"
    )
    assert set(result) >= MULTICLASS_KEYS
    assert result["n"] == 40 and sum(map(sum, result["confusion_matrix"])) == 40


def test_binary_folder_scores_tumour_present(tiny_model, datasets, tmp_path):
    result = _evaluate(tiny_model[0], tmp_path, "--data", str(datasets / "br35h"), "--limit", "20")
    assert set(result) >= BINARY_KEYS and result["n"] == 20
    assert result["tumour_specificity"] is None  # no healthy images in a "yes" folder


def test_every_report_counts_refusals_by_the_gate_the_check_and_both(tiny_model, datasets, tmp_path):
    result = _evaluate(tiny_model[0], tmp_path, "--data", str(datasets / "br35h"), "--limit", "10")
    gate, check, both = result["gate_refused"], result["modality_check_refused"], result["not_mri_refused"]
    assert max(gate, check) <= both <= min(gate + check, 10)
    assert result["gate_refused_rate"] == round(gate / 10, 4) and result["not_mri_rate"] == round(
        both / 10, 4
    )


def test_another_tasks_images_are_scored_by_refusals_alone(tiny_model, datasets, tmp_path):
    """CT slices through an MRI model (--foreign): class folders of another task are not an error."""
    result = _evaluate(
        tiny_model[0], tmp_path, "--data", str(datasets / "brain-ct" / "train"), "--foreign", "--limit", "12"
    )
    assert result["n"] == 12 and result["task"] == "tumour-mri"
    assert "accuracy" not in result and "gate_refused_rate" in result
    # The modality check the card pins reads these as CT, whatever the one-epoch gate makes of them.
    assert result["modality_check_refused"] >= 10 and result["not_mri_refused"] >= 10


def test_a_label_that_is_not_the_tasks_is_refused(tiny_model, datasets, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml.evaluate",
            "--model",
            str(tiny_model[0]),
            "--data",
            str(datasets / "br35h"),
        ]
        + ["--label", "ModerateDemented"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "not a class of tumour-mri" in proc.stderr


def test_held_out_split_selects_only_test_images(tiny_model, datasets, tmp_path):
    result = _evaluate(tiny_model[0], tmp_path, "--data", str(datasets / "br35h"), "--split", "test")
    assert 0 < result["n"] <= 3  # 10 images per label, about a tenth in test


def test_images_the_model_trained_on_are_counted_and_warned_about(tiny_model, datasets, tmp_path):
    model_dir = tiny_model[0]
    split = np.load(model_dir / "split.npz")
    seen = set(split["train"].tolist()) | set(split["val"].tolist())
    unseen = seen | set(split["test"].tolist())
    folder = tmp_path / "set" / "yes"
    folder.mkdir(parents=True)
    trained, fresh = [], []
    for path in sorted((datasets / "br35h" / "yes").iterdir()):
        digest = sha256_file(path)
        if digest in seen and len(trained) < 2:
            trained.append(path)
        elif digest not in unseen and len(fresh) < 2:
            fresh.append(path)
    for path in trained + fresh:
        shutil.copy(path, folder / path.name)
    proc = subprocess.run(
        [sys.executable, "-m", "ml.evaluate", "--model", str(model_dir), "--data", str(folder.parent)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["seen_in_training"] == len(trained) == 2
    assert "trained or was validated on 2 of these 4 images" in proc.stderr


def test_unknown_class_folder_is_a_clear_error(tiny_model, tmp_path):
    (tmp_path / "set" / "astrocytoma").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-m", "ml.evaluate", "--model", str(tiny_model[0]), "--data", str(tmp_path / "set")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "astrocytoma" in proc.stderr


def test_warnings_compare_a_folder_with_the_cards_figures_for_the_same_source():
    card = make_card(
        metrics={"accuracy": 0.94, "tumour_recall": 1.0, "tumour_specificity": 0.77},
        metrics_by_source={"br35h": {"n": 146, "tumour_present": {"tumour_recall": 0.92}}},
    )
    # Br35H tumours found at 0.93: in line with the card's Br35H figure, not its 4-class 1.0.
    assert warnings_against_card({"n": 146, "tumour_recall": 0.93}, card, "br35h") == []
    assert warnings_against_card({"n": 146, "tumour_recall": 0.80}, card, "br35h") == [
        "tumour_recall 0.800 is far below the model card's 0.920 on its internal test split of br35h"
    ]
    # A source the card has never seen is held to the 4-class test split's figures.
    assert warnings_against_card({"n": 9, "tumour_specificity": 0.5}, card, "other") == [
        "tumour_specificity 0.500 is far below the model card's 0.770 on its internal test split"
    ]
    four_class = {"labels": ["glioma"], "accuracy": 0.95, "tumour_recall": 0.99}
    assert warnings_against_card(four_class, card, "brain-tumor-mri") == []


def test_both_runtimes_score_the_same(datasets, tmp_path):
    from ml.card import default_model_dir

    try:
        model_dir = default_model_dir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    args = ("--data", str(datasets / "br35h"), "--limit", "24")
    keras = _evaluate(model_dir, tmp_path, *args, "--runtime", "keras")
    litert = _evaluate(model_dir, tmp_path, *args, "--runtime", "litert")
    assert (keras.pop("runtime"), litert.pop("runtime")) == ("keras", "litert")
    assert keras == litert and keras["n"] == 24
