"""API clients per role (token or none) and a case with a scan, prediction and explanation."""

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import Scan
from tests.factories import PredictionFactory, ScanFactory, png_bytes

ROLES = ["owner", "teammate", "outsider", "steward", "anonymous", "bad_token", "pacs_account"]


@pytest.fixture(autouse=True)
def fresh_throttle_counts():
    caches["api-throttle"].clear()
    yield
    caches["api-throttle"].clear()


@pytest.fixture
def api_for(request, db):
    """A client authenticated the way an API script is: with the role's token."""

    def make(role):
        client = APIClient()
        if role == "bad_token":
            client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
        elif role != "anonymous":
            user = request.getfixturevalue(role)
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        return client

    return make


@pytest.fixture
def owner_api(api_for):
    return api_for("owner")


@pytest.fixture
def classified(case):
    """A scan of the owner's case with a prediction and its explanation image."""
    scan = ScanFactory(case=case, status=Scan.Status.DONE, outcome=Scan.Outcome.CLASSIFIED)
    prediction = PredictionFactory(scan=scan)
    prediction.explanation.save("heat.png", ContentFile(png_bytes(colour=200)))
    return prediction
