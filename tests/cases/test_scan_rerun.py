"""One action on a scan that answered nothing (wrong modality, no model): move its case to the
question that fits, or run that scan again under another question; both audited."""

import pytest
from django.urls import reverse

from cases import questions
from cases.models import AuditEvent, Case, Scan
from inference import pipeline
from inference.models import Prediction
from tests.factories import ModelVersionFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db

CT_REASON = "this looks like a CT slice; this case asks for Tumour (MRI) (modality check 99% CT)"


def refused_ct_slice(case):
    return ScanFactory(
        case=case, status=Scan.Status.DONE, outcome=Scan.Outcome.WRONG_MODALITY, outcome_reason=CT_REASON
    )


def test_the_case_page_offers_the_question_that_fits(owner_client, case):
    scan = refused_ct_slice(case)
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "T" + CT_REASON[1:] in page
    assert "Move the case to Tumour (CT)" in page and reverse("cases:rerun", args=[scan.pk]) in page


def test_moving_the_case_reruns_its_unanswered_scans_under_the_new_question(
    owner_client, case, owner, django_capture_on_commit_callbacks
):
    scan = refused_ct_slice(case)
    classified = PredictionFactory(
        scan=ScanFactory(case=case, status=Scan.Status.DONE, outcome=Scan.Outcome.CLASSIFIED)
    ).scan
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner_client.post(
            reverse("cases:rerun", args=[scan.pk]), {"task": "tumour-ct", "move_case": "on"}
        )
    assert response.status_code == 302 and callbacks
    case.refresh_from_db()
    scan.refresh_from_db()
    classified.refresh_from_db()
    assert case.task == "tumour-ct"
    assert (scan.status, scan.outcome, scan.outcome_reason) == (Scan.Status.QUEUED, None, "")
    assert classified.status == Scan.Status.DONE
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.CASE_UPDATE).detail["task"] == {
        "from": "tumour-mri",
        "to": "tumour-ct",
    }
    rerun = AuditEvent.objects.get(verb=AuditEvent.Verb.SCAN_RERUN)
    assert rerun.detail == {"case": case.pk, "task": {"to": "tumour-ct"}, "scans": [scan.pk], "moved": True}


def test_a_scan_rerun_alone_is_run_by_the_other_questions_model(owner_client, case, monkeypatch):
    ModelVersionFactory(is_active=True)
    ct = ModelVersionFactory(is_active=True, task="tumour-ct", name="ct", classes=["tumour", "healthy"])
    scan = refused_ct_slice(case)
    owner_client.post(reverse("cases:rerun", args=[scan.pk]), {"task": "tumour-ct"})
    scan.refresh_from_db()
    case.refresh_from_db()
    assert (scan.status, scan.task, case.task) == (Scan.Status.QUEUED, "tumour-ct", "tumour-mri")
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.SCAN_RERUN)
    assert event.detail["task"] == {"from": "tumour-mri", "to": "tumour-ct"}

    monkeypatch.setattr("inference.runtime.modality_of", lambda data: ("CT", 0.99))
    seen = []
    monkeypatch.setattr(
        "inference.runtime.classify_image", lambda version, data: seen.append(version) or _ct_result()
    )
    assert pipeline.classify_scan(scan.pk) == Scan.Status.DONE
    assert seen == [ct]
    assert Prediction.objects.get(scan=scan).review_labels() == ["tumour", "healthy"]


def _ct_result():
    from types import SimpleNamespace

    return SimpleNamespace(
        outcome="classified",
        outcome_reason="",
        label="healthy",
        confidence=0.97,
        probabilities={"tumour": 0.03, "healthy": 0.97},
        tumour_probability=0.03,
        tumour_suspected=False,
        latency_ms=5.0,
        explanation_png=None,
    )


def test_a_reviewed_case_cannot_move_but_the_refusal_is_audited(owner_client, case, owner):
    ReviewFactory(prediction=PredictionFactory(scan=ScanFactory(case=case)), reviewer=owner)
    scan = refused_ct_slice(case)
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "Move the case to" not in page and "Run again" in page
    response = owner_client.post(
        reverse("cases:rerun", args=[scan.pk]), {"task": "tumour-ct", "move_case": "on"}, follow=True
    )
    assert "a clinician has reviewed one of its scans" in response.content.decode()
    assert Case.objects.get(pk=case.pk).task == "tumour-mri"
    assert Scan.objects.get(pk=scan.pk).status == Scan.Status.DONE
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.REFUSED).detail["reason"] == "question_settled"


def test_a_scan_being_classified_is_not_rerun(case, owner):
    scan = ScanFactory(case=case, status=Scan.Status.PROCESSING)
    with pytest.raises(questions.Refusal, match="run it again once it is done"):
        questions.rerun_under(scan, owner, "tumour-ct")
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.REFUSED).detail["action"] == "scan_rerun"


def test_an_outsider_cannot_rerun_a_scan(client_for, outsider, case):
    scan = refused_ct_slice(case)
    response = client_for(outsider).post(reverse("cases:rerun", args=[scan.pk]), {"task": "tumour-ct"})
    assert response.status_code == 404
