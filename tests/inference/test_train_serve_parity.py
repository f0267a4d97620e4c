"""The worker and the evaluator see identical model inputs for the same scan.

The evaluator (ml.evaluate) reads the original file; the worker reads what the upload
stored (a metadata-free PNG re-encoded from the pixels, or the de-identified DICOM slice).
Both must reach the model as the same array, or the card's metrics would not describe what
clinicians get.
"""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cases.uploads import clean_upload
from ml.evaluate import evaluate
from ml.preprocess import decode, preprocess_grey
from ml.serve import Classifier
from tests.conftest import real_mri_images
from tests.ml.conftest import make_card
from tests.privacy.corpus import corpus


class RecordingRuntime:
    """Stands in for the network: records every batch of model inputs it is given."""

    name = "recording"

    def __init__(self, classes: int):
        self.classes = classes
        self.inputs: list[np.ndarray] = []

    def predict(self, x):
        self.inputs.extend(np.array(image) for image in x)
        return np.zeros((len(x), 8), np.float32), np.zeros((len(x), self.classes), np.float32)

    def explain(self, x):
        features, logits = self.predict(x)
        return features, logits, np.zeros((len(x), 4, 4), np.float32)


@pytest.mark.parametrize("index", range(4))
def test_stored_upload_and_original_file_give_identical_model_input(index, tmp_path):
    path = real_mri_images(4)[index]
    stored = clean_upload(SimpleUploadedFile("scan.jpg", path.read_bytes())).content
    card = make_card()
    runtime = RecordingRuntime(len(card.classes))
    classifier = Classifier(tmp_path, card, runtime, gate_stats=None)

    # The evaluator's array: what ml.evaluate hands the model for the original file.
    evaluate(classifier, [str(path)], np.array([0]))
    assert len(runtime.inputs) == 1
    evaluator_input = runtime.inputs[0]
    assert np.array_equal(evaluator_input, preprocess_grey(decode(str(path))[0]))

    # The worker's array: what Classifier.classify hands the model for the stored bytes.
    runtime.inputs.clear()
    classifier.classify(stored, explain=True)
    assert len(runtime.inputs) == 1
    assert np.array_equal(runtime.inputs[0], evaluator_input)


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
    card = make_card()
    worker = RecordingRuntime(len(card.classes))
    classifier = Classifier(tmp_path, card, worker, gate_stats=None)
    monkeypatch.setattr(
        "inference.runtime.classify_image", lambda version, data: classifier.classify(data, explain=True)
    )
    pipeline.classify_scan(scan.pk)
    assert len(worker.inputs) == 1

    # ml's arrays: the original file in a class folder, as ml.train loads it and as
    # ml.evaluate scores it.
    folder = tmp_path / "dataset" / "notumor"
    folder.mkdir(parents=True)
    (folder / "slice.dcm").write_bytes(original)
    training_input = load_items(index_folder(tmp_path / "dataset")).images[0]
    evaluator = RecordingRuntime(len(card.classes))
    list(Classifier(tmp_path, card, evaluator, gate_stats=None).score_files([str(folder / "slice.dcm")]))

    assert np.array_equal(worker.inputs[0], training_input)
    assert np.array_equal(evaluator.inputs[0], training_input)
    assert training_input.std() > 0.05  # a real slice, not an empty picture
