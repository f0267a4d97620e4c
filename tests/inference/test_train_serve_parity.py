"""The worker and the evaluator see identical model inputs for the same scan.

The evaluator (ml.evaluate) reads the original file; the worker reads what the upload
stored (a metadata-free PNG re-encoded from the pixels). Both must reach the model as the
same array, or the card's metrics would not describe what clinicians get.
"""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cases.uploads import clean_upload
from ml.evaluate import evaluate
from ml.preprocess import decode, preprocess_grey
from ml.serve import Classifier
from tests.conftest import real_mri_images
from tests.ml.conftest import make_card


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
