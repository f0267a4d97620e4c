"""The shipped model of each task: its card, its split (consistent across tasks), its gate and
modality check, and what it does with its own images and with another task's. The dementia-mri
model is a candidate (ml/candidates: trained and measured, not served) until it meets its
targets; its split and card are checked all the same, as it will ship from there."""

import numpy as np
import pytest

from ml import tasks
from ml.card import MODELS_ROOT, Card, default_model_dir
from ml.labels import index_folder
from ml.serve import Classifier

TUMOUR = MODELS_ROOT / "brain-tumour" / "2026.11.24"
DEMENTIA = MODELS_ROOT.parent / "candidates" / "dementia-mri" / "2026.12.01-2"
SHIPPED = [task for task in tasks.TASKS if task != tasks.DEMENTIA_MRI]
CT = MODELS_ROOT / "tumour-ct" / "2026.12.01-4"


def _split(model_dir) -> dict[str, set[str]]:
    with np.load(model_dir / "split.npz") as data:
        return {name: set(data[name].tolist()) for name in ("train", "val", "test")}


def test_the_dementia_candidate_is_not_served():
    with pytest.raises(FileNotFoundError):
        default_model_dir(tasks.DEMENTIA_MRI)


@pytest.mark.parametrize("task", SHIPPED)
def test_every_task_has_a_shipped_model_that_reads_its_classes_and_modality(task):
    card = Card.load(default_model_dir(task))
    assert tasks.canonical(card.task) == task
    assert card.classes == tasks.get(task).classes and card.no_finding_class == tasks.get(task).no_finding
    assert card.modality == tasks.get(task).modality and card.modality_check
    assert card.ood_gate is not None and card.litert is not None


def test_the_legacy_tumour_card_still_loads_as_tumour_mri():
    assert default_model_dir("tumour-mri") == default_model_dir("brain-tumour")
    assert Card.load(TUMOUR).task == "brain-tumour"


def test_no_image_is_test_for_one_task_and_training_for_another():
    tumour, dementia = _split(TUMOUR), _split(DEMENTIA)
    shared = set().union(*tumour.values()) & set().union(*dementia.values())
    # The tumour model's 1,200 healthy dementia-grade slices: kept here on their side there, or
    # left out where their subject's side here differs.
    left_out = Card.load(DEMENTIA).training["duplicates"]["left_out_for_consistency"]
    assert len(shared) + left_out == 1200 and len(shared) > 600
    for name in ("train", "val", "test"):
        others = {"train", "val", "test"} - {name}
        for other in others:
            assert not tumour[name] & dementia[other], (name, other)


def test_the_dementia_split_keeps_each_subject_on_one_side(datasets):
    """Subjects as the card recorded them (ml.subjects: file n of a folder of N subjects is
    subject n % N), read back from the file names: no person is in two of train, val and test."""
    from ml.card import sha256_file
    from ml.subjects import ids_from_strides

    strides = Card.load(DEMENTIA).training["duplicates"]["subjects"]
    assert sum(strides.values()) == 200
    side = {digest: name for name, digests in _split(DEMENTIA).items() for digest in digests}
    paths = sorted((datasets / "alzheimer-mri" / "train").glob("*/*.jpg"))
    sides: dict[str, set] = {}
    for path, subject in zip(paths, ids_from_strides(paths, strides), strict=True):
        if (digest := sha256_file(path)) in side:
            sides.setdefault(subject, set()).add(side[digest])
    assert len(sides) == 200 and all(len(s) == 1 for s in sides.values())
    test_subjects = [s for s, names in sides.items() if names == {"test"}]
    assert any(
        s.startswith("ModerateDemented/") for s in test_subjects
    )  # one unseen person of the rarest grade


def test_the_cards_report_what_each_task_is_judged_on():
    dementia = Card.load(DEMENTIA)
    assert set(dementia.metrics["per_class"]) == set(tasks.get("dementia-mri").classes)
    assert {"macro_f1", "confusion_matrix"} <= set(dementia.metrics)
    assert "tumour_recall" not in dementia.metrics  # staging raises no tumour flag
    assert dementia.metrics["by_subject"]["n_subjects"] >= 25  # read per person, as a series verdict does
    assert dementia.training["consistent_with"] == [str(TUMOUR.relative_to(MODELS_ROOT.parent.parent))]
    ct = Card.load(CT)
    assert ct.metrics["tumour_present"]["threshold"] == ct.tumour_threshold
    assert ct.validation["tumour_present"]["tumour_recall"] >= 0.99  # the rule it was chosen by


@pytest.fixture(scope="module")
def served():
    served = {task: Classifier.load(default_model_dir(task)) for task in SHIPPED}
    return served | {tasks.DEMENTIA_MRI: Classifier.load(DEMENTIA)}


def _test_images(datasets, folder: str, model_dir, task: str, n: int) -> list:
    held_out = _split(model_dir)["test"]
    from ml.card import sha256_file

    items = index_folder(datasets / folder, task=task)[::7]
    return [it for it in items if sha256_file(it.path) in held_out][:n]


def test_each_model_reads_held_out_slices_of_its_own_task(served, datasets):
    for task, folder, model_dir in (
        ("dementia-mri", "alzheimer-mri/train", DEMENTIA),
        ("tumour-ct", "brain-ct/train", CT),
    ):
        items = _test_images(datasets, folder, model_dir, task, 6)
        outcomes = [served[task].classify(it.path, explain=False) for it in items]
        assert len(items) == 6
        assert sum(result.outcome != "not_mri" for result in outcomes) >= 5, task
        assert all(set(r.probabilities) == set(tasks.get(task).classes) for r in outcomes if r.probabilities)


def test_the_ct_model_refuses_mri_and_the_mri_models_refuse_ct(served, datasets):
    mri = index_folder(datasets / "lgg-flair", label="notumor")[::400][:5]
    ct = _test_images(datasets, "brain-ct/train", CT, "tumour-ct", 5)
    for item in mri:
        result = served["tumour-ct"].classify(item.path, explain=False)
        assert result.outcome == "not_mri" and "not a brain CT" in result.outcome_reason
    for task in ("dementia-mri", "tumour-mri"):
        for item in ct:
            assert served[task].classify(item.path, explain=False).outcome == "not_mri", task


@pytest.mark.parametrize("task", [tasks.DEMENTIA_MRI, tasks.TUMOUR_CT])
def test_the_other_tasks_refuse_photographs_documents_and_screenshots(served, task):
    """The 34 pictures the tumour model's gate is held to (tests/ml/test_shipped_model.py):
    none of them is answered by the dementia or the CT model either."""
    from tests.ml.test_shipped_model import _non_mri_images

    outcomes = {
        name: served[task].classify(np.asarray(img), explain=False) for name, img in _non_mri_images().items()
    }
    assert len(outcomes) == 34
    assert {name: r.outcome for name, r in outcomes.items() if r.outcome != "not_mri"} == {}
