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
