"""The only bridge between Django and ml/: load each task's model once per worker process, check
each scan's modality, and run the model.

The worker serves each model's LiteRT export (``model.tflite``, from ``python -m ml.export``)
and never imports TensorFlow, which the web and worker images do not install. ml.serve is still
imported inside functions only, so the web process does not load the interpreter either.

A worker holds at most one model per task (``tumour-mri``, ``dementia-mri``, ``tumour-ct``),
each loaded the first time a scan of that task needs it; a steward switching a task's active
version replaces that task's model, so the old one does not stay in memory beside it.
"""

import logging
import threading
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

SERVING_RUNTIME = "litert"
# task -> (model directory, Classifier)
_classifiers: dict[str, tuple[str, object]] = {}
# The modality check per models root, loaded once: None when none is shipped there (then only a
# model's own check runs).
_modality: dict[str, object] = {}
_lock = threading.Lock()


def model_dir(model_version) -> Path:
    return Path(settings.ML_MODELS_ROOT) / model_version.path


def get_classifier(model_version):
    """The process-wide Classifier of this version's task (loaded on first use, replaced when the
    task's active version is another)."""
    path = str(model_dir(model_version))
    with _lock:
        held = _classifiers.get(model_version.task)
        if held is None or held[0] != path:
            from ml.serve import Classifier

            # Dropped first: a switch must not hold two models of one task at once.
            _classifiers.pop(model_version.task, None)
            # One thread per model: a worker process classifies one scan at a time (batch 1,
            # fastest on one core); more throughput comes from more worker processes.
            classifier = Classifier.load(Path(path), runtime=SERVING_RUNTIME, threads=1)
            held = _classifiers[model_version.task] = (path, classifier)
    return held[1]


def loaded_tasks() -> list[str]:
    """The tasks whose model this process holds now."""
    return sorted(_classifiers)


def classify_image(model_version, image_bytes: bytes):
    """Run the model on a stored scan's bytes; returns ml.serve.Classification."""
    return get_classifier(model_version).classify(image_bytes, explain=True)


def _modality_check():
    root = Path(settings.ML_MODELS_ROOT) / "modality"
    with _lock:
        if str(root) not in _modality:
            from ml.modality import ModalityCheck, ModalityLoadError, default_check_dir

            try:
                _modality[str(root)] = ModalityCheck.load(default_check_dir(root))
            except ModalityLoadError as error:
                logger.warning("No modality check before the task models: %s", error)
                _modality[str(root)] = None
        return _modality[str(root)]


def modality_of(image) -> tuple[str, float] | None:
    """The modality this picture looks like ("MR" or "CT") and how sure the check is of it; None
    when no modality check is shipped. Runs before any task model reads the picture."""
    check = _modality_check()
    if check is None:
        return None
    from ml.modality import CT, MR
    from ml.preprocess import decode

    grey, _ = decode(image)
    p_ct = float(check.ct_probability([grey])[0])
    return (CT, p_ct) if p_ct >= check.threshold else (MR, 1.0 - p_ct)


def model_load_errors() -> tuple[type[BaseException], ...]:
    from ml.serve import ModelLoadError

    return (ModelLoadError,)


def warm_up(task: str | None = None):
    """Load a task's active model now (worker start), so its first scan does not pay for it; the
    other tasks' models load when their first scan comes."""
    from .models import ModelVersion

    active = ModelVersion.active_for(task or settings.CLASSIFICATION_TASK)
    if active is not None:
        get_classifier(active)
    return active
