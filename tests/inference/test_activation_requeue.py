"""Activating a model version runs again, audited, the scans of its task that were left without a
model (no_model); only those, once: an answered scan is not re-queued by a second activation."""

import pytest
from django.urls import reverse
from django.utils import timezone

from cases.models import AuditEvent, Case, Scan
from inference.models import ModelVersion
from tests.factories import CaseFactory, ModelVersionFactory, ScanFactory

pytestmark = pytest.mark.django_db


def no_model_scan(case, **fields):
    return ScanFactory(
        case=case, status=Scan.Status.DONE, outcome=Scan.Outcome.NO_MODEL, outcome_reason="no model", **fields
    )


@pytest.fixture
def enqueued(monkeypatch):
    published = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", published.append)
    return published


@pytest.fixture
def waiting(team, owner):
    dementia = CaseFactory(team=team, created_by=owner, task="dementia-mri")
    other = CaseFactory(team=team, created_by=owner, task="dementia-mri")
    tumour = CaseFactory(team=team, created_by=owner)
    closed = CaseFactory(team=team, created_by=owner, task="dementia-mri", status=Case.Status.CLOSED)
    return {
        "dementia": [no_model_scan(dementia), no_model_scan(dementia)],
        "other_case": no_model_scan(other),
        # Re-run alone under dementia-mri in a tumour case: it waits for that model too.
        "rerun": no_model_scan(tumour, task="dementia-mri"),
        "tumour": no_model_scan(tumour),
        "refused": ScanFactory(case=dementia, status=Scan.Status.DONE, outcome=Scan.Outcome.WRONG_MODALITY),
        "closed": no_model_scan(closed),
        "retracted": no_model_scan(dementia, retracted_at=timezone.now()),
    }


def test_activation_requeues_its_tasks_no_model_scans_once_audited_per_case(
    waiting, steward, enqueued, django_capture_on_commit_callbacks
):
    version = ModelVersionFactory(name="dementia-mri", task="dementia-mri")
    with django_capture_on_commit_callbacks(execute=True):
        requeued = version.activate(steward)
    expected = [s.pk for s in waiting["dementia"]] + [waiting["other_case"].pk, waiting["rerun"].pk]
    assert sorted(requeued) == sorted(expected) and sorted(enqueued) == sorted(expected)
    states = dict(Scan.objects.values_list("pk", "status"))
    assert all(states[pk] == Scan.Status.QUEUED for pk in expected)
    for name in ("tumour", "refused", "closed", "retracted"):
        assert states[waiting[name].pk] == Scan.Status.DONE, name
    assert Scan.objects.get(pk=expected[0]).outcome is None
    events = AuditEvent.objects.filter(verb=AuditEvent.Verb.SCAN_RERUN, object_type="cases.case")
    assert sorted((e.detail["scans"], e.actor) for e in events) == sorted(
        [
            ([s.pk for s in waiting["dementia"]], steward),
            ([waiting["other_case"].pk], steward),
            ([waiting["rerun"].pk], steward),
        ]
    )
    assert all(e.detail["model_activated"] == str(version) for e in events)

    # The worker answers them; activating again (or another version) re-queues nothing answered.
    Scan.objects.filter(pk__in=expected).update(status=Scan.Status.DONE, outcome=Scan.Outcome.CLASSIFIED)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert version.activate(steward) == []
        assert ModelVersionFactory(name="dementia-mri", task="dementia-mri").activate(steward) == []
    assert enqueued == [] and events.count() == 3


def test_the_stewards_switch_says_how_many_scans_it_queued(client_for, steward, waiting, enqueued):
    version = ModelVersionFactory(name="dementia-mri", task="dementia-mri")
    response = client_for(steward).post(reverse("inference:activate", args=[version.pk]), follow=True)
    assert "4 scan(s) left without a model are queued for it." in response.content.decode()
    assert ModelVersion.active_for("dementia-mri") == version
    switch = AuditEvent.objects.get(verb=AuditEvent.Verb.MODEL_SWITCH)
    assert switch.detail["requeued"] == 4 and switch.actor == steward
