"""Pages with nothing to draw say so in a sentence instead of drawing empty charts; the field
page says how many reviews it leaves out for lack of consent."""

import pytest
from django.urls import reverse

from analytics.importer import import_reviewed_scans
from analytics.stats import compute_dataset_stats
from cases.models import Consent
from tests.factories import CaseFactory, ModelVersionFactory, PredictionFactory, ReviewFactory, ScanFactory

from .test_pages import figures

pytestmark = pytest.mark.django_db

ONE_SIDED = {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.0, 0.0], "auc": 0.0}  # no positives in the split


def test_a_dataset_without_images_says_so(owner_client):
    dataset = import_reviewed_scans("Reviewed scans").dataset
    compute_dataset_stats(dataset.pk)
    response = owner_client.get(reverse("analytics:dataset", args=[dataset.pk]))
    assert "No reviewed scans yet" in response.content.decode()
    assert figures(response) == {}
    assert b'data-figure="' not in response.content


def test_roc_curves_of_a_class_absent_from_the_split_are_left_out(owner_client, card):
    card["metrics"]["roc_curves"]["pituitary"] = ONE_SIDED
    version = ModelVersionFactory(card=card)
    response = owner_client.get(reverse("analytics:model", args=[version.pk]))
    names = [trace["name"] for trace in figures(response)["fig-roc"]["data"]]
    assert not any(name.startswith("pituitary") for name in names)
    assert any(name.startswith("glioma") for name in names)
    assert (
        "No ROC curve for pituitary: the test split holds only one class for it" in response.content.decode()
    )


def test_a_split_of_one_class_shows_a_sentence_instead_of_roc_curves(owner_client, card):
    no_negatives = {"fpr": [0.0, 0.0, 0.0], "tpr": [0.0, 0.5, 1.0], "auc": 0.0}
    card["metrics"]["roc_curves"] = {"glioma": no_negatives, "notumor": ONE_SIDED}
    version = ModelVersionFactory(card=card)
    response = owner_client.get(reverse("analytics:model", args=[version.pk]))
    assert "fig-roc" not in figures(response)
    assert "Only one class present: a ROC curve needs both." in response.content.decode()


def test_field_page_counts_the_reviews_left_out_for_lack_of_consent(
    owner_client, owner, steward, team, model_version
):
    consented, without = CaseFactory(team=team, created_by=owner), CaseFactory(team=team, created_by=owner)
    Consent.record(consented, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    Consent.record(without, Consent.Scope.ANALYTICS, Consent.State.REFUSED, steward)
    for case, reviews in ((consented, 2), (without, 12)):
        for _ in range(reviews):
            prediction = PredictionFactory(scan=ScanFactory(case=case), model_version=model_version)
            ReviewFactory(prediction=prediction, reviewer=owner, label="glioma")
    # A second review of the same prediction replaces the first: still one review left out.
    ReviewFactory(prediction=prediction, reviewer=owner, label="notumor")

    page = owner_client.get(reverse("analytics:field")).content.decode()
    assert "12 reviews are not counted: their cases have no consent for analytics and research." in page
    assert "2 of 2 agreed" in page
    model_page = owner_client.get(reverse("analytics:model", args=[model_version.pk])).content.decode()
    assert "12 reviews are not counted" in model_page


def test_field_page_with_only_reviews_without_consent_says_both(owner_client, owner, team, model_version):
    prediction = PredictionFactory(scan=ScanFactory(case=CaseFactory(team=team, created_by=owner)))
    ReviewFactory(prediction=prediction, reviewer=owner, label="glioma")
    page = owner_client.get(reverse("analytics:field")).content.decode()
    assert "1 review is not counted: its case has no consent for analytics and research." in page
    assert "No reviewed predictions counted yet." in page
    assert figures(owner_client.get(reverse("analytics:field"))) == {}
