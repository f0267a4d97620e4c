"""Canonical labels of each task and the class-folder names that public datasets use for them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
NOTUMOR = "notumor"
# A binary dataset's "yes" folder: some tumour, type unknown. It trains and scores only the
# tumour-present decision (1 - p(notumor)), never the tumour type.
TUMOUR_UNKNOWN = "tumour"

_ALIASES = {
    "glioma": "glioma",
    "glioma_tumor": "glioma",
    "glioma_tumour": "glioma",
    "meningioma": "meningioma",
    "meningioma_tumor": "meningioma",
    "meningioma_tumour": "meningioma",
    "pituitary": "pituitary",
    "pituitary_tumor": "pituitary",
    "pituitary_tumour": "pituitary",
    "notumor": NOTUMOR,
    "no_tumor": NOTUMOR,
    "no_tumour": NOTUMOR,
    "notumour": NOTUMOR,
    "no": NOTUMOR,
    "normal": NOTUMOR,
    "healthy": NOTUMOR,
    "yes": TUMOUR_UNKNOWN,
    "tumor": TUMOUR_UNKNOWN,
    "tumour": TUMOUR_UNKNOWN,
}

# The other tasks' classes (ml.tasks registers them; their models' cards carry them).
DEMENTIA_CLASSES = ("NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented")
CT_CLASSES = ("tumour", "healthy")

# Per task (by its ml.tasks name): folder name (lower case, "-" and " " read as "_") -> label.
FOLDER_NAMES = {
    "tumour-mri": _ALIASES,
    "dementia-mri": {
        "nondemented": "NonDemented",
        "non_demented": "NonDemented",
        "verymilddemented": "VeryMildDemented",
        "very_mild_demented": "VeryMildDemented",
        "milddemented": "MildDemented",
        "mild_demented": "MildDemented",
        "moderatedemented": "ModerateDemented",
        "moderate_demented": "ModerateDemented",
    },
    "tumour-ct": {
        "tumor": "tumour",
        "tumour": "tumour",
        "yes": "tumour",
        "healthy": "healthy",
        "normal": "healthy",
        "no": "healthy",
        "notumor": "healthy",
        "no_tumor": "healthy",
        "no_tumour": "healthy",
    },
}
TASK_CLASSES = {"tumour-mri": CLASSES, "dementia-mri": DEMENTIA_CLASSES, "tumour-ct": CT_CLASSES}
DEFAULT_TASK = "tumour-mri"

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm"}


class UnknownClassFolder(ValueError):
    """A dataset folder whose name is not a known class name."""


def task_labels(task: str) -> tuple[str, ...]:
    """The labels an image of ``task`` may carry: its classes (and, for tumour MRI, "tumour of
    unknown type")."""
    if task not in TASK_CLASSES:
        raise UnknownClassFolder(
            f"no class folders are known for task {task!r}: one of {', '.join(TASK_CLASSES)}"
        )
    return TASK_CLASSES[task] + ((TUMOUR_UNKNOWN,) if task == DEFAULT_TASK else ())


def canonical_label(folder_name: str, task: str = DEFAULT_TASK) -> str:
    """Map a class-folder name to ``task``'s label, or raise naming the folder and the task's classes."""
    task_labels(task)  # an unknown task is refused by name
    names = FOLDER_NAMES[task]
    key = folder_name.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return names[key]
    except KeyError:
        raise UnknownClassFolder(
            f"unknown class folder {folder_name!r} for task {task}: its classes are "
            f"{', '.join(TASK_CLASSES[task])} (folder names read: {', '.join(sorted(names))})"
        ) from None


@dataclass(frozen=True)
class Item:
    path: Path
    label: str  # one of the task's classes, or TUMOUR_UNKNOWN (tumour MRI)
    source: str  # dataset name, for per-source metrics


def index_folder(
    root: Path | str, *, label: str | None = None, source: str | None = None, task: str = DEFAULT_TASK
) -> list[Item]:
    """List the images of a dataset laid out as one folder per class of ``task``.

    With ``label`` given, every image under ``root`` (at any depth) takes that label: for
    folders of one known kind whose sub-folders are not class names (e.g. healthy scans).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    source = source or _source_name(root)
    items: list[Item] = []
    if label is not None:
        if label not in task_labels(task):
            raise UnknownClassFolder(f"unknown label {label!r} for task {task}")
        items = [Item(p, label, source) for p in _images_under(root)]
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise UnknownClassFolder(f"{root} holds no class folders")
        for folder in folders:
            canonical = canonical_label(folder.name, task)
            items.extend(Item(p, canonical, source) for p in _images_under(folder))
    if not items:
        raise FileNotFoundError(f"no images found under {root}")
    return items


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


_SPLIT_NAMES = {"training", "train", "testing", "test", "validation", "val", "yes", "no"}


def _source_name(root: Path) -> str:
    # ".../brain-tumor-mri/Training" -> "brain-tumor-mri"; ".../br35h/yes" -> "br35h";
    # ".../alzheimer-mri/train/NonDemented" -> "alzheimer-mri"
    if root.name.lower() in _SPLIT_NAMES:
        return root.parent.name
    if root.parent.name.lower() in _SPLIT_NAMES:
        return root.parent.parent.name
    return root.name
