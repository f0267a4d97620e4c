"""A case's clinical question (Case.task): chosen when the case is opened, shown on the case page,
worklist and CSV, changeable until one of its scans is reviewed, every change audited."""

import csv
import io

import pytest
from django.urls import reverse

from cases.models import AuditEvent, Case, QuestionSettled
from tests.factories import CaseFactory, ModelVersionFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db


def test_a_case_is_opened_for_the_question_chosen_and_its_page_says_it(owner_client, team):
    owner_client.post(reverse("cases:create"), {"team": team.pk, "task": "dementia-mri"})
    case = Case.objects.get()
    assert case.task == "dementia-mri"
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert 'data-task="dementia-mri">Dementia staging (MRI)</span>' in page
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.CASE_CREATE)
    assert event.detail["task"] == "dementia-mri"


def test_a_case_opened_without_a_question_asks_the_default_one(owner_client, team):
    owner_client.post(reverse("cases:create"), {"team": team.pk})
    assert Case.objects.get().task == "tumour-mri"


def test_an_unknown_question_is_refused(owner_client, team):
    response = owner_client.post(reverse("cases:create"), {"team": team.pk, "task": "knee-xray"})
    assert response.status_code == 400 and not Case.objects.exists()


def test_the_question_changes_while_no_scan_is_reviewed_and_the_change_is_audited(owner_client, case, owner):
    PredictionFactory(scan=ScanFactory(case=case))
    response = owner_client.post(
        reverse("cases:update", args=[case.pk]), {"status": "open", "notes": "", "task": "tumour-ct"}
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.task == "tumour-ct"
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.CASE_UPDATE)
    assert event.detail == {"fields": ["task"], "task": {"from": "tumour-mri", "to": "tumour-ct"}}


def test_saving_the_case_form_without_a_question_keeps_the_one_asked(owner_client, owner):
    case = CaseFactory(created_by=owner, team=owner.teams.get(), task="tumour-ct")
    owner_client.post(reverse("cases:update", args=[case.pk]), {"status": "open", "notes": "x"})
    case.refresh_from_db()
    assert (case.task, case.notes) == ("tumour-ct", "x")


def test_the_question_is_settled_once_a_scan_is_reviewed(owner_client, case, owner):
    ReviewFactory(prediction=PredictionFactory(scan=ScanFactory(case=case)), reviewer=owner)
    response = owner_client.post(
        reverse("cases:update", args=[case.pk]),
        {"status": "open", "notes": "", "task": "dementia-mri"},
        follow=True,
    )
    case.refresh_from_db()
    assert case.task == "tumour-mri"
    assert "stays a Tumour (MRI) case: a clinician has reviewed one of its scans" in response.content.decode()
    refused = AuditEvent.objects.get(verb=AuditEvent.Verb.REFUSED)
    assert refused.detail == {"action": "case_update", "reason": "question_settled"}
    with pytest.raises(QuestionSettled):
        case.change(owner, task="tumour-ct")


def test_a_closed_case_keeps_its_question(owner, case):
    case.change(owner, status=Case.Status.CLOSED)
    with pytest.raises(Exception, match="closed"):
        case.change(owner, task="tumour-ct")


def test_the_worklist_shows_and_filters_by_question(owner_client, owner, team):
    tumour = CaseFactory(team=team, created_by=owner)
    dementia = CaseFactory(team=team, created_by=owner, task="dementia-mri")
    page = owner_client.get(reverse("cases:list")).content.decode()
    assert 'data-task="dementia-mri">Dementia staging (MRI)</td>' in page
    assert 'data-task="tumour-mri">Tumour (MRI)</td>' in page
    filtered = owner_client.get(reverse("cases:list"), {"task": "dementia-mri"}).content.decode()
    assert dementia.pseudonym in filtered and tumour.pseudonym not in filtered


def test_the_csv_export_carries_each_scans_case_question(owner_client, owner, team):
    ScanFactory(case=CaseFactory(team=team, created_by=owner, task="tumour-ct"))
    response = owner_client.get(reverse("cases:export"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["task"] for row in rows] == ["tumour-ct"]


def test_a_dementia_read_asks_no_tumour_question_on_the_page_or_in_the_csv(owner_client, owner, team):
    case = CaseFactory(team=team, created_by=owner, task="dementia-mri")
    grades = ["NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"]
    PredictionFactory(
        scan=ScanFactory(case=case, status="done", outcome="classified"),
        model_version=ModelVersionFactory(name="dementia", task="dementia-mri", classes=grades),
        label="MildDemented",
        probabilities={
            "NonDemented": 0.1,
            "VeryMildDemented": 0.1,
            "MildDemented": 0.7,
            "ModerateDemented": 0.1,
        },
        tumour_probability=None,
        tumour_suspected=False,
    )
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "MildDemented" in page and "Tumour present?" not in page
    response = owner_client.get(reverse("cases:export"))
    [row] = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert (row["task"], row["predicted_label"], row["tumour_suspected"]) == (
        "dementia-mri",
        "MildDemented",
        "",
    )
