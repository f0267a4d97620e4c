"""The clinical questions BrainScan answers, as data: each task's name, the label clinicians read,
the modality its model reads, its classes, its "no finding" class and the classes that raise the
case's flag. Pure Python (no Django, no numpy): the web process reads it for choices and labels."""

from __future__ import annotations

from dataclasses import dataclass

from ml.labels import CLASSES, CT_CLASSES, DEMENTIA_CLASSES, NOTUMOR

MR, CT = "MR", "CT"
MODALITY_NAMES = {MR: "MRI", CT: "CT"}

TUMOUR_MRI = "tumour-mri"
DEMENTIA_MRI = "dementia-mri"
TUMOUR_CT = "tumour-ct"
DEFAULT = TUMOUR_MRI

# Task names written in model cards before tasks had these names.
LEGACY_NAMES = {"brain-tumour": TUMOUR_MRI}


class UnknownTask(KeyError):
    """A task name that is none of the registered tasks (nor a legacy name of one)."""


@dataclass(frozen=True)
class Task:
    name: str
    label: str
    modality: str
    classes: tuple[str, ...]
    no_finding: str
    # Classes that suspect a tumour: a prediction of one of them flags the case for review. The
    # dementia grades name none: a dementia read never raises the tumour flag.
    flagged: tuple[str, ...] = ()

    @property
    def modality_name(self) -> str:
        return MODALITY_NAMES[self.modality]

    def wrong_modality_reason(self, found: str) -> str:
        """What a clinician reads when a slice of modality ``found`` reaches a case of this task."""
        article = "an" if found == MR else "a"
        return f"this looks like {article} {MODALITY_NAMES[found]} slice; this case asks for {self.label}"

    def no_model_reason(self) -> str:
        return f"no model is active for {self.label} yet: a data steward activates one under Models"


TASKS = {
    task.name: task
    for task in (
        Task(
            TUMOUR_MRI,
            "Tumour (MRI)",
            MR,
            CLASSES,
            NOTUMOR,
            tuple(c for c in CLASSES if c != NOTUMOR),
        ),
        Task(
            DEMENTIA_MRI,
            "Dementia staging (MRI)",
            MR,
            DEMENTIA_CLASSES,
            "NonDemented",
        ),
        Task(TUMOUR_CT, "Tumour (CT)", CT, CT_CLASSES, "healthy", ("tumour",)),
    )
}


def canonical(name: str) -> str:
    """The registered name of ``name`` (a legacy card name maps to its task); raises UnknownTask."""
    name = LEGACY_NAMES.get(name, name)
    if name not in TASKS:
        raise UnknownTask(f"unknown task {name!r}: one of {', '.join(TASKS)}")
    return name


def get(name: str) -> Task:
    return TASKS[canonical(name)]


def choices() -> list[tuple[str, str]]:
    return [(task.name, task.label) for task in TASKS.values()]


def label(name: str) -> str:
    """The clinician's label of ``name``, or the name itself for a task no longer registered."""
    try:
        return get(name).label
    except UnknownTask:
        return name
