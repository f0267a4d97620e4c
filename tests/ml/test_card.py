"""Model cards: built and validated in one place; figures written against their thresholds."""

import json

import pytest

from ml.card import (
    CARD_FILE,
    GATE_FILE,
    MODELS_ROOT,
    Card,
    CardError,
    ModelLoadError,
    percents,
    refer_reason,
    write_json_atomic,
)
from ml.serve import Classifier
from tests.ml.conftest import make_card


@pytest.mark.parametrize(
    "value,threshold,expected",
    [
        (0.868, 0.87, ("86.8%", "87.0%")),  # not "87%" and "87%"
        (0.1867, 0.1868, ("18.67%", "18.68%")),
        (0.8699999, 0.87, ("86.999%", "87.000%")),
        (0.87, 0.87, ("87%", "87%")),  # at the threshold is not below it
        (0.3, 0.1868, ("30%", "19%")),
    ],
)
def test_a_figure_below_its_threshold_reads_below_it(value, threshold, expected):
    assert percents(value, threshold) == expected


def test_refer_reason_says_below_only_with_figures_that_are():
    assert refer_reason(0.868, 0.87) == (
        "confidence 86.8% is below the model's refer threshold 87.0%: refer for specialist review"
    )


SHIPPED_CARDS = sorted((MODELS_ROOT / "brain-tumour").glob(f"*/{CARD_FILE}"))


@pytest.mark.parametrize("path", SHIPPED_CARDS, ids=lambda p: p.parent.name)
def test_a_shipped_card_loads_and_writes_back_the_same_json(path):
    card = Card.load(path.parent)
    assert card.to_json() == json.loads(path.read_text())
    assert card.refer_threshold > 0 and card.litert is not None and card.ood_gate_file == GATE_FILE


def _shipped_json() -> dict:
    return json.loads(SHIPPED_CARDS[-1].read_text())


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: c.pop("refer_threshold"), "required field refer_threshold is missing"),
        (lambda c: c.pop("sha256"), "required field sha256 is missing"),
        (lambda c: c.update(temperature="1.3"), "field temperature should be float"),
        (lambda c: c["input"].update(height=None), "field input.height should be int"),
        (lambda c: c["litert"].pop("head_sha256"), "required field litert.head_sha256 is missing"),
        (lambda c: c.update(refer_treshold=0.8), "unknown field refer_treshold"),
        (lambda c: c.pop("ood_gate_file"), "ood_gate and ood_gate_file go together"),
        (lambda c: c.update(card_format=2), "unsupported card_format 2"),
    ],
)
def test_an_invalid_card_is_a_load_error_naming_the_field(tmp_path, change, message):
    data = _shipped_json()
    change(data)
    write_json_atomic(tmp_path / CARD_FILE, data)
    with pytest.raises(ModelLoadError, match=message):
        Card.load(tmp_path)
    with pytest.raises(ModelLoadError, match=message):
        Classifier.load(tmp_path)


def test_a_card_built_in_code_is_checked_like_one_read_from_disk(tmp_path):
    card = make_card()
    card.save(tmp_path)
    assert Card.load(tmp_path) == card
    with pytest.raises(CardError, match="field temperature should be float"):
        make_card(temperature="warm")
    with pytest.raises(CardError, match="no_finding_class 'healthy' is not one of"):
        make_card(no_finding_class="healthy")


def test_a_missing_gate_file_is_a_load_error_not_a_silently_open_gate(tmp_path):
    import shutil

    shutil.copytree(SHIPPED_CARDS[-1].parent, tmp_path / "m")
    (tmp_path / "m" / GATE_FILE).unlink()
    with pytest.raises(ModelLoadError, match="gate.npz missing"):
        Classifier.load(tmp_path / "m")
