import pytest
from PIL import Image

from ml.labels import CLASSES, NOTUMOR, TUMOUR_UNKNOWN, UnknownClassFolder, canonical_label, index_folder


@pytest.mark.parametrize(
    "folder, label",
    [
        ("glioma", "glioma"),
        ("glioma_tumor", "glioma"),
        ("meningioma_tumor", "meningioma"),
        ("pituitary_tumor", "pituitary"),
        ("no_tumor", NOTUMOR),
        ("No", NOTUMOR),
        ("normal", NOTUMOR),
        ("healthy", NOTUMOR),
        ("notumor", NOTUMOR),
        ("yes", TUMOUR_UNKNOWN),
        ("Tumor", TUMOUR_UNKNOWN),
        ("tumour", TUMOUR_UNKNOWN),
    ],
)
def test_public_dataset_folder_names_map_to_canonical_labels(folder, label):
    assert canonical_label(folder) == label


def _dataset(root, folders):
    for name in folders:
        (root / name).mkdir(parents=True)
        Image.new("L", (32, 32), 90).save(root / name / "a.png")
    return root


def test_index_reads_class_folders_with_aliases(tmp_path):
    root = _dataset(tmp_path / "kaggle", ["glioma_tumor", "no_tumor", "pituitary_tumor", "meningioma_tumor"])
    items = index_folder(root)
    assert sorted(i.label for i in items) == sorted(CLASSES)
    assert {i.source for i in items} == {"kaggle"}


def test_unknown_folder_is_an_error_naming_it(tmp_path):
    root = _dataset(tmp_path / "set", ["glioma", "astrocytoma"])
    with pytest.raises(UnknownClassFolder, match="astrocytoma"):
        index_folder(root)


def test_assumed_label_takes_any_subfolder(tmp_path):
    root = _dataset(tmp_path / "alz", ["NonDemented", "MildDemented"])
    items = index_folder(root, label=NOTUMOR)
    assert [i.label for i in items] == [NOTUMOR, NOTUMOR]


def test_real_dataset_indexes_every_file(datasets):
    items = index_folder(datasets / "brain-tumor-mri" / "Training")
    assert len(items) == 5712
    assert {i.label for i in items} == set(CLASSES)


@pytest.mark.parametrize(
    "path, source",
    [
        ("brain-tumor-mri/Training", "brain-tumor-mri"),
        ("br35h/yes", "br35h"),
        ("alzheimer-mri/train/NonDemented", "alzheimer-mri"),
        ("my-hospital", "my-hospital"),
    ],
)
def test_source_is_the_collection_not_its_split_or_grade_folder(tmp_path, path, source):
    root = tmp_path / path
    (root / "scan").mkdir(parents=True)
    Image.new("L", (8, 8)).save(root / "scan" / "a.png")
    assert {i.source for i in index_folder(root, label=NOTUMOR)} == {source}


@pytest.mark.parametrize(
    "task, folder, label",
    [
        ("tumour-ct", "tumor", "tumour"),
        ("tumour-ct", "healthy", "healthy"),
        ("tumour-ct", "Tumour", "tumour"),
        ("dementia-mri", "NonDemented", "NonDemented"),
        ("dementia-mri", "VeryMildDemented", "VeryMildDemented"),
        ("dementia-mri", "Mild_Demented", "MildDemented"),
        ("dementia-mri", "ModerateDemented", "ModerateDemented"),
        ("tumour-mri", "healthy", NOTUMOR),
    ],
)
def test_each_tasks_folder_names_map_to_its_own_classes(task, folder, label):
    assert canonical_label(folder, task) == label


def test_an_unknown_folder_names_the_folder_the_task_and_its_classes(tmp_path):
    root = _dataset(tmp_path / "ct", ["tumor", "glioma"])
    with pytest.raises(UnknownClassFolder) as error:
        index_folder(root, task="tumour-ct")
    message = str(error.value)
    assert "'glioma'" in message and "tumour-ct" in message and "tumour, healthy" in message


def test_a_task_without_class_folders_is_refused_by_name():
    with pytest.raises(UnknownClassFolder, match="knee-xray"):
        canonical_label("yes", "knee-xray")


def test_every_registered_task_has_its_folder_names_and_they_name_its_classes():
    from ml import tasks
    from ml.labels import FOLDER_NAMES, task_labels

    assert set(FOLDER_NAMES) == set(tasks.TASKS)
    for task in tasks.TASKS.values():
        assert set(FOLDER_NAMES[task.name].values()) <= set(task_labels(task.name))
        assert set(task.classes) <= set(FOLDER_NAMES[task.name].values())


def test_real_task_datasets_index_into_their_tasks_classes(datasets):
    ct = index_folder(datasets / "brain-ct" / "train", task="tumour-ct")
    assert len(ct) == 3232 and {i.label for i in ct} == {"tumour", "healthy"}
    assert {i.source for i in ct} == {"brain-ct"}
    dementia = index_folder(datasets / "alzheimer-mri" / "train", task="dementia-mri")
    assert sum(i.label == "ModerateDemented" for i in dementia) == 52
