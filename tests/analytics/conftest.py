"""A small real dataset (10 images per class, symlinked from ../shared) and a registered model card."""

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from ml.preprocess import SIZE
from tests.conftest import TUMOUR_TRAINING

# Folder names as other Kaggle copies spell them: the import must map them like ml/ does.
FOLDERS = {
    "glioma_tumor": "glioma",
    "meningioma": "meningioma",
    "no_tumor": "notumor",
    "pituitary": "pituitary",
}
PER_CLASS = 10


def shown_grey(name) -> np.ndarray:
    """A cached greyscale image (mean, variability) as the page shows it, back at the
    preprocessing size, in 0-1: within half a grey level of the array it was drawn from."""
    with default_storage.open(name) as fh:
        pixels = np.asarray(Image.open(fh).convert("L").resize((SIZE, SIZE), Image.Resampling.NEAREST))
    return pixels / 255.0


GREY_LEVEL = 0.5 / 255 + 1e-6


def link_small_folder(root):
    """root/<class folder>/*.jpg: the first PER_CLASS real images of each class, as symlinks (the
    test is skipped where the images are missing)."""
    if not TUMOUR_TRAINING.is_dir():
        pytest.skip(f"real MRI images not found at {TUMOUR_TRAINING}")
    for folder, label in FOLDERS.items():
        (root / folder).mkdir(parents=True)
        for source in sorted((TUMOUR_TRAINING / label).glob("*.jpg"))[:PER_CLASS]:
            (root / folder / source.name).symlink_to(source)
    return root


@pytest.fixture
def small_folder(tmp_path):
    """tmp_path/data/<class folder>/*.jpg: the first PER_CLASS images of each class, as symlinks."""
    return link_small_folder(tmp_path / "data")


@pytest.fixture
def card():
    return model_card()


def model_card():
    """A model card with every key the performance pages read (shape of ml.train's model.json)."""
    classes = ["glioma", "meningioma", "notumor", "pituitary"]
    return {
        "card_format": 1,
        "name": "bt",
        "version": "v1",
        "task": "brain-tumour",
        "classes": classes,
        "description": "Brain MRI slice classifier.",
        "tumour_threshold": 0.1868,
        "metrics": {
            "split": "internal test",
            "n": 40,
            "labels": classes,
            "accuracy": 0.85,
            "macro_f1": 0.84,
            "per_class": {
                c: {"precision": 0.8 + i / 100, "recall": 0.9 - i / 100, "f1": 0.85, "support": 10}
                for i, c in enumerate(classes)
            },
            "confusion_matrix": [[9, 1, 0, 0], [1, 8, 1, 0], [0, 0, 10, 0], [1, 1, 1, 7]],
            "roc_curves": {
                c: {"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.8, 1.0], "auc": 0.9 + i / 100}
                for i, c in enumerate(classes)
            },
            "reliability": [
                {"bin_low": 0.6, "bin_high": 0.8, "count": 12, "confidence": 0.71, "accuracy": 0.66},
                {"bin_low": 0.8, "bin_high": 1.0, "count": 28, "confidence": 0.93, "accuracy": 0.93},
            ],
            "ece": 0.031,
            "tumour_present": {"threshold": 0.1868, "tumour_recall": 0.9976, "tumour_specificity": 0.6727},
        },
        "metrics_by_source": {"brain-tumor-mri": {"n": 40, "accuracy": 0.85, "macro_f1": 0.84}},
        "baselines": {
            "nearest_centroid": {"accuracy": 0.55, "input": "64x64 pixels"},
            "pca_logistic_regression": {"accuracy": 0.7, "input": "64x64 pixels, 39 principal components"},
        },
        "history": {
            "loss": [1.3, 0.9, 0.6],
            "val_loss": [1.2, 1.0, 0.8],
            "mask_accuracy": [0.4, 0.6, 0.8],
            "val_mask_accuracy": [0.45, 0.55, 0.7],
        },
        "training": {
            "split_sizes": {"train": 300, "val": 40, "test": 40},
            "label_counts": {"train": {c: 75 for c in classes}, "val": {c: 10 for c in classes}},
            "duplicates": {"images": 380, "exact_duplicates": 2, "near_duplicate_pairs": 5, "groups": 375},
            "seconds": 60.2,
            "epochs_run": 3,
        },
    }


@pytest.fixture
def model_version(db, card):
    from tests.factories import ModelVersionFactory

    return ModelVersionFactory(name="bt", version="v1", card=card, is_active=True)
