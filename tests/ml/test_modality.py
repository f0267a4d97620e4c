"""The modality check: CT slices are refused by the MRI model, real MRI slices are not."""

import json
import shutil

import numpy as np
import pytest

from ml.modality import CT, MR, ModalityCheck, ModalityLoadError, default_check_dir, features, refusal
from ml.preprocess import to_grey

from .conftest import DATASETS

CT_FOLDER = DATASETS / "brain-ct" / "train"
MRI_FOLDERS = {
    "brain-tumor-mri": DATASETS / "brain-tumor-mri" / "Training",
    "br35h": DATASETS / "br35h",
    "lgg-flair": DATASETS / "lgg-flair",
    "alzheimer-mri": DATASETS / "alzheimer-mri" / "train",
}


@pytest.fixture(scope="module")
def check():
    try:
        return ModalityCheck.load(default_check_dir())
    except ModalityLoadError as exc:
        pytest.skip(str(exc))


def _spread(folder, n):
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    files = sorted(p for p in folder.rglob("*.jpg"))
    return [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]


def test_features_are_a_fixed_length_and_do_not_depend_on_the_call():
    rng = np.random.default_rng(0)
    grey = (rng.random((200, 180)) * 255).astype(np.uint8)
    first, second = features(grey), features(grey.copy())
    assert first.shape == (42,) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)


def test_refusal_names_the_modality_found_and_the_one_expected():
    assert refusal(0.9, 0.5, MR).startswith("looks like a CT slice")
    assert "90% CT" in refusal(0.9, 0.5, MR)
    assert refusal(0.1, 0.5, CT).startswith("looks like an MR slice")
    assert refusal(0.1, 0.5, MR) == "" and refusal(0.9, 0.5, CT) == ""


def test_ct_slices_are_told_apart_from_mri_slices(check):
    """Spread over each folder (train and held-out alike: the card has the held-out figures)."""
    ct = check.ct_probability([to_grey(p) for p in _spread(CT_FOLDER, 60)])
    assert (ct >= check.threshold).mean() >= 0.95
    for name, folder in MRI_FOLDERS.items():
        mri = check.ct_probability([to_grey(p) for p in _spread(folder, 40)])
        assert (mri >= check.threshold).mean() <= 0.05, name


def test_card_reports_held_out_figures_per_source(check):
    test = check.card["metrics"]["test"]
    assert set(MRI_FOLDERS) | {"brain-ct"} <= set(test)
    assert test["brain-ct"]["wrong_modality"] <= 0.02
    for name in MRI_FOLDERS:
        assert test[name]["wrong_modality"] <= 0.01, name


def test_a_changed_model_file_is_refused(check, tmp_path):
    copy = tmp_path / "modality"
    shutil.copytree(check.model_dir, copy)
    with open(copy / "modality.joblib", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModalityLoadError, match="sha256"):
        ModalityCheck.load(copy)


def test_a_card_of_another_feature_version_is_refused(check, tmp_path):
    copy = tmp_path / "modality"
    shutil.copytree(check.model_dir, copy)
    card = json.loads((copy / "modality.json").read_text())
    card["feature_version"] = "0"
    (copy / "modality.json").write_text(json.dumps(card))
    with pytest.raises(ModalityLoadError, match="feature version"):
        ModalityCheck.load(copy)
