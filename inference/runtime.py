"""The only bridge between Django and ml/: load a model once per worker process and run it.

The worker serves each model's LiteRT export (``model.tflite``, from ``python -m ml.export``)
and never imports TensorFlow, which the web and worker images do not install. ml.serve is still
imported inside functions only, so the web process does not load the interpreter either.
"""

import threading
from pathlib import Path

from django.conf import settings

SERVING_RUNTIME = "litert"
_classifiers = {}
_lock = threading.Lock()


def model_dir(model_version) -> Path:
    return Path(settings.ML_MODELS_ROOT) / model_version.path


def get_classifier(model_version):
    """The process-wide Classifier for this model version (loaded on first use)."""
    path = model_dir(model_version)
    key = str(path)
    with _lock:
        classifier = _classifiers.get(key)
        if classifier is None:
            from ml.serve import Classifier

            # One thread per model: a worker process classifies one scan at a time (batch 1,
            # fastest on one core); more throughput comes from more worker processes.
            classifier = Classifier.load(path, runtime=SERVING_RUNTIME, threads=1)
            _classifiers[key] = classifier
    return classifier


def classify_image(model_version, image_bytes: bytes):
    """Run the model on a stored scan's bytes; returns ml.serve.Classification."""
    return get_classifier(model_version).classify(image_bytes, explain=True)


def model_load_errors() -> tuple[type[BaseException], ...]:
    from ml.serve import ModelLoadError

    return (ModelLoadError,)


def warm_up(task: str | None = None):
    """Load the active model now (worker start), so the first scan does not pay for it."""
    from .models import ModelVersion

    active = ModelVersion.active_for(task or settings.CLASSIFICATION_TASK)
    if active is not None:
        get_classifier(active)
    return active
