"""Mean, variability and difference images of case scans are shown to a clinician only for classes
with at least ANALYTICS_MIN_CLASS_SCANS scans from teams other than the clinician's, out of at
least two teams: a class of one scan is that scan (a Team B clinician read a Team A scan as
mean-glioma.png), and a team could subtract its own scans from a mean that holds few others."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from analytics.importer import import_reviewed_scans
from analytics.stats import compute_dataset_stats
from cases.models import Consent, Scan
from tests.conftest import _clinician, real_mri_images
from tests.factories import CaseFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db

K = 10  # the README's figure, and the setting's default


def _reviewed_scans(team, user, steward, model_version, labels, images):
    case = CaseFactory(team=team, created_by=user)
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    for label in labels:
        scan = ScanFactory(
            case=case, image=ContentFile(next(images).read_bytes(), name="scan.jpg"), status=Scan.Status.DONE
        )
        prediction = PredictionFactory(scan=scan, model_version=model_version, label=label)
        ReviewFactory(prediction=prediction, reviewer=user, label=label)


@pytest.fixture
def two_teams_dataset(team, other_team, owner, outsider, steward, model_version):
    """glioma: one Team A scan. meningioma: K Team B scans and one Team A scan. notumor: K from
    each team. pituitary: K + 5 scans, all Team A."""
    images = iter(real_mri_images(4 * K + 7))
    _reviewed_scans(team, owner, steward, model_version, ["glioma", "meningioma"] + ["notumor"] * K, images)
    _reviewed_scans(team, owner, steward, model_version, ["pituitary"] * (K + 5), images)
    _reviewed_scans(
        other_team, outsider, steward, model_version, ["meningioma"] * K + ["notumor"] * K, images
    )
    dataset = import_reviewed_scans("Reviewed scans").dataset
    compute_dataset_stats(dataset.pk)
    return dataset


def _files(dataset, *keys):
    return {key: reverse("analytics:dataset_file", args=[dataset.pk, key]) for key in keys}


def _status(client, urls):
    return {key: client.get(url).status_code for key, url in urls.items()}


AGGREGATES = [
    f"{kind}-{label}.png"
    for label in ("glioma", "meningioma", "notumor", "pituitary")
    for kind in ("mean", "std")
]


def test_the_default_threshold_is_the_readmes(settings):
    assert settings.ANALYTICS_MIN_CLASS_SCANS == K


def test_a_team_b_clinician_cannot_read_a_team_a_scan_as_a_class_mean(
    two_teams_dataset, client_for, outsider
):
    urls = _files(two_teams_dataset, *AGGREGATES, "diff-glioma-notumor.png", "diff-notumor-glioma.png")
    assert _status(client_for(outsider), urls) == {
        "mean-glioma.png": 404,  # one scan: it is that scan
        "std-glioma.png": 404,
        # Team B's own K scans and one of Team A's: B could subtract its own and see A's scan.
        "mean-meningioma.png": 404,
        "std-meningioma.png": 404,
        "mean-notumor.png": 200,  # K scans from Team A, the other team
        "std-notumor.png": 200,
        "mean-pituitary.png": 404,  # one team only
        "std-pituitary.png": 404,
        "diff-glioma-notumor.png": 404,  # a difference shows both classes' means
        "diff-notumor-glioma.png": 404,
    }


def test_the_rule_counts_scans_from_the_viewers_other_teams(two_teams_dataset, client_for, owner):
    urls = _files(two_teams_dataset, *AGGREGATES, "diff-meningioma-notumor.png", "diff-glioma-notumor.png")
    assert _status(client_for(owner), urls) == {
        "mean-glioma.png": 404,
        "std-glioma.png": 404,
        "mean-meningioma.png": 200,  # K from Team B, the owner's other team
        "std-meningioma.png": 200,
        "mean-notumor.png": 200,
        "std-notumor.png": 200,
        "mean-pituitary.png": 404,  # the owner's own team only: still one team
        "std-pituitary.png": 404,
        "diff-meningioma-notumor.png": 200,
        "diff-glioma-notumor.png": 404,
    }


def test_a_clinician_in_both_teams_sees_no_aggregate_of_them(two_teams_dataset, client_for, team, other_team):
    both = _clinician("both", team)
    both.memberships.create(team=other_team)
    urls = _files(two_teams_dataset, *AGGREGATES)
    assert set(_status(client_for(both), urls).values()) == {404}


def test_stewards_see_every_aggregate(two_teams_dataset, client_for, steward):
    urls = _files(two_teams_dataset, *AGGREGATES, "diff-glioma-notumor.png")
    assert set(_status(client_for(steward), urls).values()) == {200}


def test_the_page_links_only_what_the_clinician_may_see_and_says_why(two_teams_dataset, client_for, outsider):
    page = reverse("analytics:dataset", args=[two_teams_dataset.pk])
    html = client_for(outsider).get(page).content.decode()
    assert _files(two_teams_dataset, "mean-notumor.png")["mean-notumor.png"] in html
    for key in ("mean-glioma.png", "std-glioma.png", "mean-pituitary.png", "diff-glioma-notumor.png"):
        assert _files(two_teams_dataset, key)[key] not in html
    assert f"at least {K} scans from other teams" in html
    chosen = client_for(outsider).get(page, {"a": "glioma", "b": "notumor"}).content.decode()
    assert _files(two_teams_dataset, "diff-glioma-notumor.png")["diff-glioma-notumor.png"] not in chosen


def test_folder_datasets_are_public_and_unaffected(small_folder, client_for, outsider):
    from analytics.importer import import_folder

    dataset = import_folder(small_folder, "Public").dataset
    compute_dataset_stats(dataset.pk)
    urls = _files(dataset, "mean-glioma.png", "std-notumor.png", "diff-glioma-notumor.png")
    assert set(_status(client_for(outsider), urls).values()) == {200}
