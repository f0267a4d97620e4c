"""python -m ml.series_eval on four real lgg-flair patients with the shipped model."""

import json

import numpy as np
import pytest

from ml.patient_split import load_split
from ml.series import load_rule
from ml.series_eval import main, windows

from .conftest import DATASETS, REPO_ROOT

LGG_FLAIR = DATASETS / "lgg-flair"
SHIPPED = REPO_ROOT / "ml" / "models" / "brain-tumour" / "2026.11.24"
# Two validation and two test patients of the committed split, 20 slices each.
PATIENTS = ["TCGA_CS_4944", "TCGA_HT_7602", "TCGA_CS_5393", "TCGA_HT_7686"]


def test_windows_are_consecutive_non_overlapping_blocks_labelled_by_any_tumour_slice():
    probs = np.arange(7, dtype=float)
    labels = np.array([False, False, False, True, False, False, False])
    blocks = windows(probs, labels, 3)
    assert [list(b) for b, _ in blocks] == [[0, 1, 2], [3, 4, 5]]  # the seventh slice is a remainder
    assert [label for _, label in blocks] == [False, True]


@pytest.fixture
def four_patients(tmp_path):
    if not LGG_FLAIR.is_dir():
        pytest.skip(f"lgg-flair not found under {DATASETS}")
    data = tmp_path / "lgg-flair"
    for folder in ("yes", "no"):
        (data / folder).mkdir(parents=True)
        for patient in PATIENTS:
            for path in (LGG_FLAIR / folder).glob(f"{patient}_*.jpg"):
                (data / folder / path.name).symlink_to(path)
    split = load_split()
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"patients": {p: split[p] for p in PATIENTS}}))
    return data, split_file


def test_rule_chosen_on_validation_patients_and_reported_on_test_patients_with_a_cache(
    four_patients, tmp_path
):
    data, split_file = four_patients
    args = ["--model", str(SHIPPED), "--data", str(data), "--split-file", str(split_file)]
    args += ["--window", "5", "--cache", str(tmp_path / "cache"), "--json", str(tmp_path / "out.json")]
    assert main(args) == 0
    first = json.loads((tmp_path / "out.json").read_text())
    assert first["slices_scored_now"] == 80
    assert first["val"]["patients"] == first["test"]["patients"] == 2
    assert first["val"]["slices"]["every_slice"]["n"] == first["test"]["slices"]["every_slice"]["n"] == 40
    reported = [entry["rule"] for entry in first["test"]["rules"]]
    if first["chosen_rule"] is not None:
        assert reported[0] == first["chosen_rule"]
    for entry in first["test"]["rules"]:
        assert entry["windows"]["n"] == 8  # 20 slices a patient, windows of 5
        assert entry["patients"]["counts"]["tn"] + entry["patients"]["counts"]["fp"] == 0  # all have a tumour
    assert main(args) == 0
    second = json.loads((tmp_path / "out.json").read_text())
    assert second["slices_scored_now"] == 0
    assert {k: v for k, v in second.items() if k != "slices_scored_now"} == {
        k: v for k, v in first.items() if k != "slices_scored_now"
    }


def test_a_patient_missing_from_the_split_is_a_usage_error(four_patients, tmp_path, capsys):
    data, _ = four_patients
    split_file = tmp_path / "partial.json"
    split_file.write_text(json.dumps({"patients": {PATIENTS[0]: "val"}}))
    assert main(["--model", str(SHIPPED), "--data", str(data), "--split-file", str(split_file)]) == 2
    assert "not in the split file" in capsys.readouterr().err


def test_write_rule_puts_the_chosen_rule_beside_the_card(four_patients, tmp_path):
    data, split_file = four_patients
    model_dir = tmp_path / "brain-tumour" / SHIPPED.name
    model_dir.mkdir(parents=True)
    for path in SHIPPED.iterdir():
        (model_dir / path.name).symlink_to(path)
    args = ["--model", str(model_dir), "--data", str(data), "--split-file", str(split_file), "--window", "5"]
    args += ["--cache", str(tmp_path / "cache"), "--json", str(tmp_path / "out.json"), "--write-rule"]
    code = main(args)
    chosen = json.loads((tmp_path / "out.json").read_text())["chosen_rule"]
    if chosen is None:
        assert code == 2
    else:
        assert code == 0
        assert load_rule(model_dir, 0.5).as_dict() == chosen
