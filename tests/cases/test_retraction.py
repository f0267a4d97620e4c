"""Retracting a scan uploaded by mistake: its uploader (or a steward) confirms with a reason; the
scan leaves the case page, CSV export, analytics, training export and field performance; its
files leave storage; the row keeps its hash and who retracted it and why; the audit log has it."""

import csv
import io
from types import SimpleNamespace

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from analytics.consent import stats_still_allowed, usable_images, usable_reviews
from analytics.importer import import_reviewed_scans
from analytics.performance import field_performance
from cases.forms import ReviewForm
from cases.models import AuditEvent, Case, Consent, Refusal, Scan
from cases.training import skipped_scans, training_scans
from inference.models import Review
from inference.pipeline import claim
from tests.factories import PredictionFactory, ReviewFactory, ScanFactory, png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def classified(case):
    """The owner's upload, classified (tumour suspected), with an explanation image."""
    prediction = PredictionFactory(scan=ScanFactory(case=case, status=Scan.Status.DONE, outcome="classified"))
    prediction.explanation.save("heat.png", ContentFile(png_bytes(colour=200)))
    case.refresh_flag()
    return prediction.scan


def storage():
    return Scan._meta.get_field("image").storage


def retract_url(scan):
    return reverse("cases:retract", args=[scan.pk])


def test_the_uploader_retracts_a_scan_after_confirming_with_a_reason(owner_client, owner, case, classified):
    prediction = classified.predictions.get()
    names = [classified.image.name, prediction.explanation.name]
    sha256 = classified.sha256
    case_page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert retract_url(classified) in case_page

    confirm = owner_client.get(retract_url(classified))
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "This cannot be undone" in page and 'name="reason"' in page
    assert Scan.objects.get(pk=classified.pk).retracted_at is None  # asking changes nothing

    response = owner_client.post(retract_url(classified), {"reason": "Wrong patient's slice"})
    assert response.status_code == 302 and response["Location"] == reverse("cases:detail", args=[case.pk])

    scan = Scan.objects.get(pk=classified.pk)
    assert (scan.retracted_by, scan.retraction_reason, scan.sha256) == (
        owner,
        "Wrong patient's slice",
        sha256,
    )
    assert scan.retracted_at is not None and scan.image.name == ""
    assert not any(storage().exists(name) for name in names)
    prediction.refresh_from_db()
    assert not prediction.explanation
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert f'id="scan-{scan.pk}"' not in page and f"Scan {scan.pk} retracted" in page
    assert "No scans yet." in page
    # Its only scan was the suspected tumour: the case flag follows the scans that are left.
    assert Case.objects.get(pk=case.pk).flag == Case.Flag.NONE
    assert owner_client.get(reverse("cases:scan_image", args=[scan.pk])).status_code == 404
    assert owner_client.get(reverse("cases:explanation_image", args=[prediction.pk])).status_code == 404
    assert owner_client.get(retract_url(scan)).status_code == 404
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.SCAN_RETRACT)
    assert (event.actor, event.object_id) == (owner, str(scan.pk))
    # The free-text reason stays on the scan row only, never in the append-only log.
    assert event.detail == {"case": case.pk, "files": 2, "reviewed": False}


@pytest.mark.parametrize("reason", ["", "   ", "..."])
def test_a_retraction_needs_a_reason(owner_client, classified, reason):
    response = owner_client.post(retract_url(classified), {"reason": reason})
    assert response.status_code == 400
    assert "Say in a few words why" in response.content.decode()
    scan = Scan.objects.get(pk=classified.pk)
    assert scan.retracted_at is None and storage().exists(scan.image.name)
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.SCAN_RETRACT).exists()


def test_a_teammate_cannot_retract_someone_elses_scan_but_a_steward_can(
    client_for, teammate, steward, case, classified
):
    teammate_client = client_for(teammate)
    assert (
        retract_url(classified)
        not in teammate_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    )
    response = teammate_client.post(retract_url(classified), {"reason": "not mine"}, follow=True)
    assert "Only the clinician who uploaded scan" in response.content.decode()
    assert Scan.objects.get(pk=classified.pk).retracted_at is None

    client_for(steward).post(retract_url(classified), {"reason": "uploader asked by phone"})
    scan = Scan.objects.get(pk=classified.pk)
    assert scan.retracted_by == steward and scan.retracted_at is not None


def test_an_outsider_gets_404(client_for, outsider, classified):
    assert client_for(outsider).get(retract_url(classified)).status_code == 404
    assert client_for(outsider).post(retract_url(classified), {"reason": "x1"}).status_code == 404
    assert Scan.objects.get(pk=classified.pk).retracted_at is None


def test_once_reviewed_only_a_steward_can_retract_it(client_for, owner, teammate, steward, case, classified):
    ReviewFactory(prediction=classified.predictions.get(), reviewer=teammate, label="glioma")
    owner_client = client_for(owner)
    assert (
        retract_url(classified)
        not in owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    )
    response = owner_client.post(retract_url(classified), {"reason": "wrong slice"}, follow=True)
    assert "has been reviewed" in response.content.decode()
    assert Scan.objects.get(pk=classified.pk).retracted_at is None

    client_for(steward).post(retract_url(classified), {"reason": "wrong patient, reviewed in error"})
    assert Scan.objects.get(pk=classified.pk).retracted_by == steward
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.SCAN_RETRACT)
    assert event.detail["reviewed"] is True


def test_a_closed_case_refuses_retraction(owner_client, case, classified):
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED)
    response = owner_client.post(retract_url(classified), {"reason": "wrong slice"}, follow=True)
    assert "is closed, so it is read-only: reopen it to retract its scans." in response.content.decode()
    assert Scan.objects.get(pk=classified.pk).retracted_at is None


def test_a_queued_scan_retracted_is_never_classified(owner, case):
    queued = ScanFactory(case=case)
    queued.retract(owner, "photo of the request form")
    scan = Scan.objects.get(pk=queued.pk)
    assert scan.status == Scan.Status.FAILED and scan.failure_reason == "Retracted before it was classified."
    assert claim(scan.pk) is False


def test_a_scan_being_classified_is_retracted_once_done(owner_client, case):
    scan = ScanFactory(case=case, status=Scan.Status.PROCESSING)
    response = owner_client.post(retract_url(scan), {"reason": "wrong slice"}, follow=True)
    assert "is being classified right now" in response.content.decode()
    assert Scan.objects.get(pk=scan.pk).retracted_at is None


def test_a_retracted_scan_leaves_the_csv_analytics_training_and_field_performance(
    owner, owner_client, steward, case, classified
):
    kept = PredictionFactory(scan=ScanFactory(case=case, status=Scan.Status.DONE, outcome="classified"))
    for prediction in (kept, classified.predictions.get()):
        ReviewFactory(prediction=prediction, reviewer=owner, label="glioma")
    for scope in (Consent.Scope.ANALYTICS, Consent.Scope.TRAINING):
        Consent.record(case, scope, Consent.State.GRANTED, steward)
    dataset = import_reviewed_scans("reviewed").dataset
    assert dataset.images.count() == 2 and training_scans().count() == 2

    Scan.objects.get(pk=classified.pk).retract(steward, "another patient's slice")

    export = owner_client.get(reverse("cases:export"))
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [int(row["scan_id"]) for row in rows] == [kept.scan_id]
    assert list(training_scans().values_list("pk", flat=True)) == [kept.scan_id]
    assert skipped_scans() == {"retracted": 1}
    assert list(usable_reviews().values_list("prediction__scan", flat=True)) == [kept.scan_id]
    assert field_performance()["versions"][0]["reviews"] == 1
    assert list(usable_images(dataset).values_list("scan", flat=True)) == [kept.scan_id]
    dataset = import_reviewed_scans("reviewed").dataset
    assert list(dataset.images.values_list("scan", flat=True)) == [kept.scan_id]
    # Statistics cached before the retraction counted it: they are hidden until recomputed.
    assert not stats_still_allowed(SimpleNamespace(data={"scan_ids": [kept.scan_id, classified.pk]}))
    assert stats_still_allowed(SimpleNamespace(data={"scan_ids": [kept.scan_id]}))


def test_a_review_saved_just_after_the_retraction_is_refused(owner, teammate, classified):
    # The reviewer's page was loaded before the uploader retracted the scan.
    form = ReviewForm(
        {"label": "glioma"}, prediction=classified.predictions.select_related("scan__case").get()
    )
    assert form.is_valid()
    Scan.objects.get(pk=classified.pk).retract(owner, "wrong slice")
    with pytest.raises(Refusal, match="was retracted"):
        form.save(reviewer=teammate)
    assert not Review.objects.exists()


def test_a_storage_outage_while_deleting_still_retracts_and_names_the_file(
    owner, classified, monkeypatch, caplog
):
    """The retraction is committed before the files go: a failing delete is logged, not a 500."""
    name = classified.image.name

    def broken_delete(name):
        raise OSError("storage unreachable")

    monkeypatch.setattr(storage(), "delete", broken_delete)
    classified.retract(owner, "wrong patient")
    classified.refresh_from_db()
    assert classified.retracted_at is not None and not classified.image
    assert any(name in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("status", [Scan.Status.CHECKING, Scan.Status.HELD])
def test_the_retract_page_of_a_scan_whose_pixels_are_hidden_shows_no_image(
    client_for, owner_client, steward, case, status
):
    scan = ScanFactory(case=case, status=status)
    image_url = reverse("cases:scan_image", args=[scan.pk])
    assert image_url not in owner_client.get(retract_url(scan)).content.decode()
    assert image_url in client_for(steward).get(retract_url(scan)).content.decode()
