"""Withdrawal and erasure propagate: training export follows consent; erased images are gone."""

import csv
import io

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from cases.models import AuditEvent, Consent, Scan, erase_case_images
from cases.training import export_training_images, training_scans
from tests.factories import CaseFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db


def reviewed_scan(case, label="meningioma", outcome=Scan.Outcome.CLASSIFIED):
    scan = ScanFactory(case=case, status=Scan.Status.DONE, outcome=outcome)
    prediction = PredictionFactory(scan=scan)
    ReviewFactory(prediction=prediction, label=label, decision="corrected")
    return scan


@pytest.fixture
def consenting(team, owner, steward):
    case = CaseFactory(team=team, created_by=owner)
    Consent.record(case, Consent.Scope.TRAINING, Consent.State.GRANTED, steward)
    return case


def test_only_cases_with_training_consent_are_exported(consenting, case, steward, tmp_path):
    kept = reviewed_scan(consenting)
    reviewed_scan(case)  # no consent recorded: pending, never exported
    refused = CaseFactory(team=case.team, created_by=case.created_by)
    Consent.record(refused, Consent.Scope.TRAINING, Consent.State.REFUSED, steward)
    reviewed_scan(refused)

    result = export_training_images(tmp_path / "out", steward)

    assert result.scan_ids == [kept.pk]
    rows = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    assert [row["label"] for row in rows] == ["meningioma"]
    exported = tmp_path / "out" / rows[0]["file"]
    assert Image.open(exported).mode == "L"
    # Neither the pseudonym nor the scan id leaves the system in names.
    assert consenting.pseudonym not in rows[0]["file"]
    assert len(exported.stem) == 16 and exported.stem != str(kept.pk)
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.TRAINING_EXPORT, actor=steward).count() == 1


def test_withdrawal_excludes_the_case_from_the_next_export(consenting, steward, tmp_path):
    reviewed_scan(consenting)
    assert training_scans().count() == 1
    Consent.record(consenting, Consent.Scope.TRAINING, Consent.State.WITHDRAWN, steward)
    assert training_scans().count() == 0
    assert export_training_images(tmp_path / "after", steward).files == 0
    assert list((tmp_path / "after").glob("*/*.png")) == []


def test_held_and_erased_scans_are_never_exported(consenting, steward):
    held = reviewed_scan(consenting)
    Scan.objects.filter(pk=held.pk).update(status=Scan.Status.HELD)
    assert training_scans().count() == 0
    Scan.objects.filter(pk=held.pk).update(status=Scan.Status.DONE)
    erase_case_images(consenting, steward)
    assert training_scans().count() == 0


def test_only_scans_admitted_as_mri_are_exported_and_the_rest_are_counted(consenting, steward, tmp_path):
    classified = reviewed_scan(consenting)
    uncertain = reviewed_scan(consenting, label="glioma", outcome=Scan.Outcome.UNCERTAIN)
    # A review recorded on a refused picture (before the rule): a page of text labelled glioma.
    reviewed_scan(consenting, label="glioma", outcome=Scan.Outcome.WRONG_MODALITY)
    reviewed_scan(consenting, outcome=None)
    held = reviewed_scan(consenting)
    Scan.objects.filter(pk=held.pk).update(status=Scan.Status.HELD)

    result = export_training_images(tmp_path / "out", steward)

    assert result.scan_ids == [classified.pk, uncertain.pk]
    assert result.skipped == {
        "refused as not a brain MRI": 1,
        "never checked as a brain MRI": 1,
        "held for a steward's check": 1,
    }
    assert sorted(p.parent.name for p in (tmp_path / "out").glob("*/*.png")) == ["glioma", "meningioma"]
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.TRAINING_EXPORT)
    assert event.detail["skipped"] == result.skipped


def test_export_command_says_how_many_it_skipped_and_why(consenting, steward, tmp_path):
    reviewed_scan(consenting)
    reviewed_scan(consenting, label="glioma", outcome=Scan.Outcome.WRONG_MODALITY)
    out = io.StringIO()
    call_command("export_training_images", str(tmp_path / "out"), "--steward", steward.username, stdout=out)
    assert out.getvalue().splitlines() == [
        f"Exported 1 scan(s) with training consent to {tmp_path / 'out'}.",
        "Skipped 1 labelled scan(s): 1 refused as not a brain MRI.",
    ]


def test_export_command_is_for_stewards_only(consenting, owner, steward, tmp_path):
    reviewed_scan(consenting)
    with pytest.raises(CommandError, match="not an active data steward"):
        call_command("export_training_images", str(tmp_path / "x"), "--steward", owner.username)
    assert not (tmp_path / "x").exists()
    call_command("export_training_images", str(tmp_path / "y"), "--steward", steward.username)
    assert len(list((tmp_path / "y").glob("*/*.png"))) == 1


def test_erasure_deletes_files_and_keeps_tombstones(case, steward):
    done = reviewed_scan(case)
    prediction = done.predictions.get()
    prediction.explanation.save("cam.png", _png_file(), save=True)
    queued = ScanFactory(case=case)
    storage = Scan._meta.get_field("image").storage
    names = [done.image.name, queued.image.name, prediction.explanation.name]
    hashes = {done.pk: done.sha256, queued.pk: queued.sha256}
    assert all(storage.exists(name) for name in names)

    erased = erase_case_images(case, steward)

    assert sorted(erased) == sorted(hashes)
    assert not any(storage.exists(name) for name in names)
    for scan in Scan.objects.filter(case=case):
        assert scan.image.name == "" and scan.erased_at is not None and scan.erased_by == steward
        assert scan.sha256 == hashes[scan.pk]
    assert Scan.objects.get(pk=queued.pk).status == Scan.Status.FAILED
    prediction.refresh_from_db()
    assert not prediction.explanation
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.ERASE)
    assert event.actor == steward and event.object_id == str(case.pk) and event.detail["files"] == 3


def test_erased_scan_image_is_404_and_page_still_renders(case, steward, owner_client):
    scan = reviewed_scan(case)
    erase_case_images(case, steward)
    assert owner_client.get(reverse("cases:scan_image", args=[scan.pk])).status_code == 404
    page = owner_client.get(reverse("cases:detail", args=[case.pk]))
    assert page.status_code == 200 and b"Image erased" in page.content


def _png_file():
    out = io.BytesIO()
    Image.new("L", (4, 4)).save(out, format="PNG")
    return ContentFile(out.getvalue())
