"""The worker and the evaluator see identical model inputs for the same scan.

The evaluator (ml.evaluate) reads the original file; the worker reads what the upload
stored (a metadata-free PNG re-encoded from the pixels). Both must reach the model as the
same array, or the card's metrics would not describe what clinicians get.
"""

import inspect

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cases.uploads import clean_upload
from tests.conftest import real_mri_images


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
