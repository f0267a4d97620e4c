"""Review labels follow the prediction's model version (Prediction.review_labels), on the page and
in the API alike: a task with other classes is reviewed in its own labels, not the tumour ones."""

import pytest
from django.urls import reverse

from inference.models import Review
from tests.factories import ModelVersionFactory, PredictionFactory, ScanFactory

pytestmark = pytest.mark.django_db

GRADES = ["non_demented", "very_mild", "mild", "moderate"]


@pytest.fixture
def graded(case):
    version = ModelVersionFactory(name="dementia", task="dementia-mri", classes=GRADES)
    return PredictionFactory(
        scan=ScanFactory(case=case, status="done", outcome="classified"),
        model_version=version,
        label="mild",
        probabilities={"non_demented": 0.1, "very_mild": 0.2, "mild": 0.6, "moderate": 0.1},
        tumour_probability=None,
        tumour_suspected=False,
    )


def test_the_page_takes_the_models_own_labels_and_refuses_tumour_ones(owner_client, graded):
    url = reverse("cases:review", args=[graded.pk])
    owner_client.post(url, {f"p{graded.pk}-label": "glioma"})
    assert not Review.objects.exists()
    owner_client.post(url, {f"p{graded.pk}-label": "moderate"})
    assert list(Review.objects.values_list("label", "decision")) == [("moderate", "corrected")]


def test_the_api_takes_the_models_own_labels_and_refuses_tumour_ones(owner_api, graded):
    url = f"/api/v1/scans/{graded.scan_id}/review/"
    refused = owner_api.post(url, {"label": "glioma"}, format="json")
    assert refused.status_code == 400 and "label" in refused.json()["errors"]
    assert not Review.objects.exists()
    accepted = owner_api.post(url, {"label": "mild"}, format="json")
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["decision"] == "confirmed" and accepted.json()["label"] == "mild"
