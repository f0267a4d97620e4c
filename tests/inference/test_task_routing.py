"""Each scan is run by the active model of its case's question, after the modality check: a slice
of another modality, or a question without a model, gets a clear outcome and no prediction."""

from types import SimpleNamespace

import pytest

from cases.models import Case, Scan
from inference import pipeline, runtime
from inference.models import Prediction
from tests.conftest import SHARED_DATASETS
from tests.factories import CaseFactory, ModelVersionFactory, ScanFactory

pytestmark = pytest.mark.django_db

DEMENTIA = ["NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"]


def dementia_result():
    return SimpleNamespace(
        outcome="classified",
        outcome_reason="",
        label="MildDemented",
        confidence=0.8,
        probabilities={
            "NonDemented": 0.1,
            "VeryMildDemented": 0.05,
            "MildDemented": 0.8,
            "ModerateDemented": 0.05,
        },
        tumour_probability=0.9,
        tumour_suspected=True,
        latency_ms=10.0,
        explanation_png=None,
    )


@pytest.fixture
def models_called(monkeypatch):
    calls = []

    def fake(model_version, data):
        calls.append(model_version)
        return dementia_result()

    monkeypatch.setattr(runtime, "classify_image", fake)
    return calls


def test_a_dementia_case_is_run_by_the_dementia_model_and_raises_no_tumour_flag(owner, team, models_called):
    ModelVersionFactory(is_active=True)
    dementia = ModelVersionFactory(is_active=True, task="dementia-mri", name="dementia", classes=DEMENTIA)
    case = CaseFactory(team=team, created_by=owner, task="dementia-mri")
    scan = ScanFactory(case=case)
    assert pipeline.classify_scan(scan.pk) == Scan.Status.DONE
    assert models_called == [dementia]
    prediction = Prediction.objects.get(scan=scan)
    assert (prediction.label, prediction.tumour_suspected, prediction.tumour_probability) == (
        "MildDemented",
        False,
        None,
    )
    assert prediction.review_labels() == DEMENTIA
    case.refresh_from_db()
    assert case.flag == Case.Flag.NONE


def test_a_question_without_an_active_model_says_so_and_is_not_retried(owner, team, models_called):
    ModelVersionFactory(is_active=True)
    case = CaseFactory(team=team, created_by=owner, task="dementia-mri")
    scan = ScanFactory(case=case)
    assert pipeline.classify_scan(scan.pk) == Scan.Status.DONE
    scan.refresh_from_db()
    assert (scan.outcome, scan.attempts) == (Scan.Outcome.NO_MODEL, 1)
    assert scan.outcome_reason.startswith("no model is active for Dementia staging (MRI) yet")
    assert models_called == [] and pipeline.sweep_stuck_scans() == []


def test_a_slice_of_another_modality_is_not_shown_to_the_questions_model(case, models_called, monkeypatch):
    ModelVersionFactory(is_active=True)
    monkeypatch.setattr(runtime, "modality_of", lambda data: ("CT", 0.996))
    scan = ScanFactory(case=case)
    assert pipeline.classify_scan(scan.pk) == Scan.Status.DONE
    scan.refresh_from_db()
    assert scan.outcome == Scan.Outcome.WRONG_MODALITY
    assert scan.outcome_reason == (
        "this looks like a CT slice; this case asks for Tumour (MRI) (modality check 99% CT)"
    )
    assert models_called == [] and not Prediction.objects.exists()


def test_the_models_own_refusal_is_a_wrong_modality_outcome(case, monkeypatch):
    ModelVersionFactory(is_active=True)
    refused = dementia_result()
    refused.outcome, refused.outcome_reason, refused.label = "not_mri", "not classified: colour picture", None
    monkeypatch.setattr(runtime, "classify_image", lambda version, data: refused)
    scan = ScanFactory(case=case)
    pipeline.classify_scan(scan.pk)
    scan.refresh_from_db()
    assert (scan.outcome, scan.outcome_reason) == (
        Scan.Outcome.WRONG_MODALITY,
        "not classified: colour picture",
    )


def test_the_shipped_modality_check_reads_a_real_ct_slice_as_ct():
    slices = sorted((SHARED_DATASETS / "brain-ct" / "train" / "healthy").glob("*.jpg"))[:1]
    if not slices:
        pytest.skip("no brain-ct slices under ../shared/datasets")
    found, sure = runtime.modality_of(slices[0].read_bytes())
    assert found == "CT" and sure > 0.5


def test_a_worker_holds_one_model_per_task_loaded_on_first_use(monkeypatch):
    loaded = []

    class FakeClassifier:
        @classmethod
        def load(cls, path, **kwargs):
            loaded.append(path.name)
            return cls()

    monkeypatch.setattr("ml.serve.Classifier", FakeClassifier)
    monkeypatch.setattr(runtime, "_classifiers", {})
    tumour = ModelVersionFactory(path="t/1")
    dementia = ModelVersionFactory(task="dementia-mri", name="d", path="d/1")
    assert runtime.loaded_tasks() == []
    first = runtime.get_classifier(tumour)
    assert runtime.get_classifier(tumour) is first and runtime.loaded_tasks() == ["tumour-mri"]
    runtime.get_classifier(dementia)
    assert runtime.loaded_tasks() == ["dementia-mri", "tumour-mri"]
    # A steward's switch replaces the task's model: still one per task.
    runtime.get_classifier(ModelVersionFactory(task="dementia-mri", name="d", path="d/2"))
    assert runtime.loaded_tasks() == ["dementia-mri", "tumour-mri"] and loaded == ["1", "1", "2"]
