"""Stewards read studies received from the PACS, series verdicts and series reviews in the admin:
read-only (no add, change or delete), and no source StudyInstanceUID shown."""

import pytest
from django.urls import reverse

from cases.models import StudyImport
from inference.models import SeriesReview, SeriesVerdict
from tests.inference.test_series_review import series_with_verdict

pytestmark = pytest.mark.django_db
SOURCE_UID = "1.2.826.0.1.3680043.8.498.4242"


@pytest.fixture
def steward_client(client_for, steward):
    return client_for(steward)


@pytest.fixture
def pending_pull(case, owner):
    return StudyImport.objects.create(
        team=case.team,
        case=case,
        requested_by=owner,
        source=StudyImport.Source.PULL,
        study_key="ab" * 32,
        study_uid=SOURCE_UID,
    )


@pytest.fixture
def reviewed_verdict(case, teammate):
    verdict, _ = series_with_verdict(case)
    review = SeriesReview.objects.create(
        verdict=verdict, reviewer=teammate, decision="confirmed", label="glioma"
    )
    return verdict, review


def admin_urls(model, pk):
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    return reverse(f"{name}_changelist"), reverse(f"{name}_change", args=[pk]), name


@pytest.mark.parametrize("which", ["import", "verdict", "review"])
def test_a_steward_reads_them_and_can_change_nothing(steward_client, pending_pull, reviewed_verdict, which):
    verdict, review = reviewed_verdict
    row = {"import": pending_pull, "verdict": verdict, "review": review}[which]
    listing, change, name = admin_urls(type(row), row.pk)

    assert steward_client.get(listing).status_code == 200
    page = steward_client.get(change)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert steward_client.get(reverse(f"{name}_add")).status_code == 403
    assert steward_client.post(reverse(f"{name}_add"), {}).status_code == 403
    assert steward_client.post(change, {"status": "done", "label": "notumor"}).status_code == 403
    assert steward_client.post(reverse(f"{name}_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    assert type(row).objects.filter(pk=row.pk).exists()
    assert (StudyImport.objects.get().status, SeriesVerdict.objects.get().label) == ("queued", verdict.label)
    assert SeriesReview.objects.get().label == "glioma"


def test_the_source_uid_of_a_pending_pull_is_never_shown(steward_client, pending_pull):
    listing, change, _ = admin_urls(StudyImport, pending_pull.pk)

    for url in (listing, change):
        assert SOURCE_UID not in steward_client.get(url).content.decode()


def test_clinicians_do_not_see_them(owner_client, pending_pull, reviewed_verdict):
    verdict, review = reviewed_verdict
    for row in (pending_pull, verdict, review):
        listing, _, _ = admin_urls(type(row), row.pk)
        assert owner_client.get(listing).status_code in (302, 403, 404)
