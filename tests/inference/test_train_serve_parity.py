"""The worker and the evaluator see identical model inputs for the same scan.

The evaluator (ml.evaluate) reads the original file; the worker reads what the upload
stored (a metadata-free PNG re-encoded from the pixels, or the de-identified DICOM slice).
Both must reach the model as the same array, or the card's metrics would not describe what
clinicians get.
"""

import inspect

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.uploads import clean_upload
from tests.conftest import real_mri_images
from tests.privacy.corpus import corpus


@pytest.mark.parametrize("index", range(4))
def test_stored_upload_and_original_file_give_identical_model_input(index, monkeypatch):
    import ml.evaluate
    import ml.serve
    from ml.preprocess import decode, preprocess_grey

    path = real_mri_images(4)[index]
    stored = clean_upload(SimpleUploadedFile("scan.jpg", path.read_bytes())).content

    seen = []

    def spy(grey, size=128):
        out = preprocess_grey(grey, size)
        seen.append(out)
        return out

    monkeypatch.setattr(ml.serve, "preprocess_grey", spy)
    classifier = object.__new__(ml.serve.Classifier)  # the path up to the model needs no weights
    classifier.gate_thresholds = None
    classifier.modality_check = None
    classifier.size = 128

    class _Stop(Exception):
        pass

    def explain(x):
        raise _Stop

    classifier._explain = explain

    # The evaluator's array: ml.evaluate scores files through Classifier.score_files.
    assert "score_files" in inspect.getsource(ml.evaluate.evaluate)
    fed = []
    classifier.predict_arrays = lambda batch: (fed.append(batch), (np.zeros((len(batch), 1)), None))[1]
    list(classifier.score_files([str(path)]))
    evaluator_input = fed[0][0]
    assert np.array_equal(evaluator_input, preprocess_grey(decode(str(path))[0]))

    # The worker's array: what Classifier.classify hands the model for the stored bytes.
    seen.clear()
    with pytest.raises(_Stop):
        classifier.classify(stored)
    assert len(seen) == 1
    assert np.array_equal(seen[0], evaluator_input)


def _classifier_feeding(fed):
    """A Classifier without weights that records what reaches the model, then stops."""
    import ml.serve

    classifier = object.__new__(ml.serve.Classifier)
    classifier.gate_thresholds = None
    classifier.modality_check = None
    classifier.size = 128

    def explain(x):
        fed.append(x[0])
        raise _Stop

    classifier._explain = explain
    classifier.predict_arrays = lambda batch: (fed.extend(batch), (np.zeros((len(batch), 1)), None))[1]
    return classifier


class _Stop(Exception):
    pass


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(corpus()))
def test_a_dicom_upload_and_the_same_file_in_a_dataset_give_identical_model_input(
    name, case, owner_client, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """Rescaled, windowed and MONOCHROME1 slices: the worker reads the stored (de-identified)
    upload, ml.train and ml.evaluate the original file in a dataset folder; one array."""
    from cases.models import Scan
    from inference import pipeline
    from ml.data import load_items
    from ml.labels import index_folder
    from tests.factories import ModelVersionFactory

    original = corpus()[name]
    monkeypatch.setattr("inference.tasks.enqueue_classification", lambda scan_id: None)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("cases:upload", args=[case.pk]),
            {"files": [SimpleUploadedFile("slice.dcm", original, content_type="application/dicom")]},
        )
    scan = Scan.objects.get(case=case)
    assert scan.modality == Scan.Modality.DICOM

    # The worker's array: what the pipeline hands the runtime, through Classifier.classify.
    ModelVersionFactory(is_active=True)
    worker_fed = []
    classifier = _classifier_feeding(worker_fed)
    monkeypatch.setattr(
        "inference.runtime.classify_image", lambda model_version, data: classifier.classify(data)
    )
    pipeline.classify_scan(scan.pk)
    assert len(worker_fed) == 1

    # ml's arrays: the original file in a class folder, as ml.train loads it and as
    # ml.evaluate scores it.
    folder = tmp_path / "dataset" / "notumor"
    folder.mkdir(parents=True)
    (folder / "slice.dcm").write_bytes(original)
    training_input = load_items(index_folder(tmp_path / "dataset")).images[0]
    evaluator_fed = []
    list(_classifier_feeding(evaluator_fed).score_files([str(folder / "slice.dcm")]))

    assert np.array_equal(worker_fed[0], training_input)
    assert np.array_equal(evaluator_fed[0], training_input)
    assert training_input.std() > 0.05  # a real slice, not an empty picture
