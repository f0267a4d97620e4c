"""factory_boy factories for the shared fixtures and per-test rows."""

import hashlib
import io

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from PIL import Image

from cases.models import Case, Membership, Scan, Team
from inference.models import ModelVersion, Prediction, Review

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


def png_bytes(size=(64, 64), colour=128, mode="L"):
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct-horse-battery-staple")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"Team {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    team = factory.SubFactory(TeamFactory)
    created_by = factory.SubFactory(UserFactory)


class ScanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scan

    case = factory.SubFactory(CaseFactory)
    uploaded_by = factory.SelfAttribute("case.created_by")
    image = factory.LazyFunction(lambda: ContentFile(png_bytes(), name="scan.png"))
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(png_bytes()).hexdigest())
    width = 64
    height = 64


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    name = "brain-tumour"
    version = factory.Sequence(lambda n: f"test-{n}")
    task = "tumour-mri"
    path = factory.LazyAttribute(lambda o: f"{o.name}/{o.version}")
    classes = CLASSES


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    scan = factory.SubFactory(ScanFactory, status=Scan.Status.DONE, outcome=Scan.Outcome.CLASSIFIED)
    model_version = factory.SubFactory(ModelVersionFactory)
    label = "glioma"
    confidence = 0.91
    probabilities = {"glioma": 0.91, "meningioma": 0.05, "notumor": 0.02, "pituitary": 0.02}
    tumour_probability = 0.98
    tumour_suspected = True
    latency_ms = 120.0


class ReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Review

    prediction = factory.SubFactory(PredictionFactory)
    reviewer = factory.SubFactory(UserFactory)
    decision = Review.Decision.CONFIRMED
    label = "glioma"
