"""The task registry (ml.tasks): three clinical questions, each with its modality and classes."""

import pytest

from ml import tasks


def test_three_tasks_with_their_modality_and_no_finding_class():
    assert [(t.name, t.modality) for t in tasks.TASKS.values()] == [
        ("tumour-mri", "MR"),
        ("dementia-mri", "MR"),
        ("tumour-ct", "CT"),
    ]
    for task in tasks.TASKS.values():
        assert task.no_finding in task.classes
        assert set(task.flagged) <= set(task.classes) - {task.no_finding}


def test_the_tumour_mri_task_reads_the_shipped_models_classes():
    assert tasks.get("tumour-mri").classes == ("glioma", "meningioma", "notumor", "pituitary")


def test_a_legacy_card_name_maps_to_its_task_and_an_unknown_one_is_refused():
    assert tasks.canonical("brain-tumour") == "tumour-mri"
    with pytest.raises(tasks.UnknownTask):
        tasks.canonical("knee-xray")
    assert tasks.label("knee-xray") == "knee-xray"


def test_the_wrong_modality_reason_names_both_the_slice_and_the_question():
    assert tasks.get("tumour-mri").wrong_modality_reason("CT") == (
        "this looks like a CT slice; this case asks for Tumour (MRI)"
    )
    assert "an MRI slice" in tasks.get("tumour-ct").wrong_modality_reason("MR")


def test_no_task_has_more_classes_than_the_label_codes_hold():
    from ml.data import UNKNOWN_CODE

    assert all(len(task.classes) <= UNKNOWN_CODE for task in tasks.TASKS.values())
