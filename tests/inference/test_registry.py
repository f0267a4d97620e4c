"""Model registry: rows from the model cards, one active per task, stewards switch."""

import json

import pytest
from django.db import IntegrityError
from django.urls import reverse

from cases.models import AuditEvent
from inference.models import ModelVersion
from inference.registry import sync_registry
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def write_card(root, name, version, created_at, task="brain-tumour"):
    folder = root / name / version
    folder.mkdir(parents=True)
    card = {
        "card_format": 1,
        "name": name,
        "version": version,
        "task": task,
        "classes": ["glioma", "meningioma", "notumor", "pituitary"],
        "sha256": "ab" * 32,
        "metrics": {"accuracy": 0.9},
        "created_at": created_at,
    }
    (folder / "model.json").write_text(json.dumps(card))
    return folder


def test_sync_registers_cards_and_activates_the_newest(tmp_path):
    write_card(tmp_path, "brain-tumour", "v1", "2025-01-01T00:00:00Z")
    write_card(tmp_path, "brain-tumour", "v2", "2025-06-01T00:00:00Z")
    sync_registry(tmp_path)
    active = ModelVersion.objects.get(is_active=True)
    assert (active.version, active.path, active.metrics) == ("v2", "brain-tumour/v2", {"accuracy": 0.9})
    assert ModelVersion.objects.count() == 2


def test_resync_keeps_the_stewards_choice_and_retires_missing_cards(tmp_path):
    write_card(tmp_path, "brain-tumour", "v1", "2025-01-01T00:00:00Z")
    v2 = write_card(tmp_path, "brain-tumour", "v2", "2025-06-01T00:00:00Z")
    sync_registry(tmp_path)
    ModelVersion.objects.get(version="v1").activate()
    sync_registry(tmp_path)
    assert ModelVersion.objects.get(is_active=True).version == "v1"
    (v2 / "model.json").unlink()
    sync_registry(tmp_path)
    assert not ModelVersion.objects.get(version="v2").is_available


def test_database_refuses_two_active_versions_of_one_task():
    ModelVersionFactory(is_active=True)
    with pytest.raises(IntegrityError):
        ModelVersionFactory(is_active=True)


def test_steward_switch_is_audited(client_for, steward):
    old = ModelVersionFactory(is_active=True)
    new = ModelVersionFactory()
    response = client_for(steward).post(reverse("inference:activate", args=[new.pk]))
    assert response.status_code == 302
    assert ModelVersion.active_for("brain-tumour") == new
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.MODEL_SWITCH)
    assert event.detail["previous"] == str(old) and event.actor == steward


def test_unreadable_card_is_skipped_not_fatal(tmp_path):
    write_card(tmp_path, "brain-tumour", "v1", "2025-01-01T00:00:00Z")
    broken = tmp_path / "brain-tumour" / "v2"
    broken.mkdir()
    (broken / "model.json").write_text('{"card_format": 99}')
    assert [v.version for v in sync_registry(tmp_path)] == ["v1"]


def test_a_card_with_the_legacy_task_name_registers_as_tumour_mri(tmp_path):
    write_card(tmp_path, "brain-tumour", "v1", "2025-01-01T00:00:00Z", task="brain-tumour")
    write_card(tmp_path, "dementia", "v1", "2025-01-01T00:00:00Z", task="dementia-mri")
    write_card(tmp_path, "knee", "v1", "2025-01-01T00:00:00Z", task="knee-xray")
    sync_registry(tmp_path)
    active = ModelVersion.objects.filter(is_active=True).order_by("task")
    assert [(v.name, v.task) for v in active] == [
        ("dementia", "dementia-mri"),
        ("brain-tumour", "tumour-mri"),
    ]


def test_activating_a_version_leaves_the_other_tasks_active_versions_alone():
    tumour = ModelVersionFactory(is_active=True)
    dementia_old = ModelVersionFactory(task="dementia-mri", name="dementia", is_active=True)
    dementia_new = ModelVersionFactory(task="dementia-mri", name="dementia")
    dementia_new.activate()
    assert ModelVersion.active_for("tumour-mri") == tumour
    assert ModelVersion.active_for("dementia-mri") == dementia_new
    dementia_old.refresh_from_db()
    assert not dementia_old.is_active


def test_the_models_page_groups_versions_by_task_and_names_a_task_without_one(client_for, owner):
    ModelVersionFactory(is_active=True, version="2026.11.24")
    ModelVersionFactory(task="tumour-ct", name="ct", version="0.1")
    page = client_for(owner).get(reverse("inference:list")).content.decode()
    tumour, dementia, ct = (
        page.index(f'id="task-{name}"') for name in ("tumour-mri", "dementia-mri", "tumour-ct")
    )
    assert tumour < page.index("2026.11.24") < dementia < ct < page.index("0.1</td>")
    assert "No model yet for Dementia staging (MRI)" in page
    assert "No model yet for Tumour (MRI)" not in page
