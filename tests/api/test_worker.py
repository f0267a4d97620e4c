"""An upload through the API is classified end to end by the real Celery worker and real model."""

import math

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import real_mri_images
from tests.waiting import wait_for

pytestmark = pytest.mark.worker


def test_api_upload_is_classified_by_the_worker(classifying_worker, owner, case):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    path = real_mri_images(1, classes=("pituitary",))[0]
    response = client.post(
        f"/api/v1/cases/{case.pk}/scans/",
        {"files": [SimpleUploadedFile(path.name, path.read_bytes())]},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    url = response.json()["scans"][0]["url"]

    def finished():
        body = client.get(url).json()
        return body if body["status"] in ("done", "failed") else None

    scan = wait_for(finished, timeout=180, message="the worker to classify the uploaded scan")

    assert scan["status"] == "done", scan["failure_reason"]
    assert scan["outcome"] in ("classified", "uncertain"), scan["outcome_reason"]
    prediction = scan["prediction"]
    assert prediction["label"] in prediction["probabilities"]
    assert math.isclose(sum(prediction["probabilities"].values()), 1.0, abs_tol=1e-4)
    assert prediction["confidence"] == pytest.approx(max(prediction["probabilities"].values()))
    assert prediction["latency_ms"] > 0 and prediction["model_version"]
    assert client.get(scan["image_url"]).status_code == 200
    if scan["explanation_url"]:
        assert client.get(scan["explanation_url"])["Content-Type"] == "image/png"
