"""inference.runtime: the worker loads each model's LiteRT export once and serves it."""

import shutil

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cases.models import Scan
from cases.uploads import clean_upload, store_scans
from inference import pipeline, runtime
from ml.card import MODELS_ROOT
from tests.conftest import real_mri_images
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db

SHIPPED = MODELS_ROOT / "brain-tumour" / "2026.11.24"


@pytest.fixture
def models_root(tmp_path, settings, monkeypatch):
    settings.ML_MODELS_ROOT = tmp_path
    monkeypatch.setattr(runtime, "_classifiers", {})
    return tmp_path


def _model_version(models_root, without=()):
    target = models_root / "brain-tumour" / "copy"
    shutil.copytree(SHIPPED, target, ignore=shutil.ignore_patterns(*without))
    return ModelVersionFactory(is_active=True, task="brain-tumour", path="brain-tumour/copy")


def test_the_worker_serves_the_litert_export_once_per_process(models_root):
    version = _model_version(models_root)
    classifier = runtime.get_classifier(version)
    assert classifier.runtime.name == "litert"
    assert runtime.get_classifier(version) is classifier


def test_a_model_without_its_export_fails_the_scan_with_the_command_to_run(models_root, case, owner):
    _model_version(models_root, without=("model.tflite",))
    path = real_mri_images(1)[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("inference.tasks.enqueue_classification", lambda scan_id: None)
        [scan] = store_scans(case, owner, [clean_upload(SimpleUploadedFile(path.name, path.read_bytes()))])

    assert pipeline.classify_scan(scan.pk) == Scan.Status.FAILED

    scan.refresh_from_db()
    assert "could not be loaded" in scan.failure_reason
    assert "python -m ml.export" in scan.failure_reason
    assert not scan.predictions.exists()
