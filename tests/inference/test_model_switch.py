"""Switching the active model on the Models page: a confirmation page says what will happen, and
only the POST from it switches (audited)."""

import pytest
from django.urls import reverse

from cases.models import AuditEvent
from inference.models import ModelVersion
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions():
    current = ModelVersionFactory(version="2026.11.23", is_active=True, metrics={"accuracy": 0.91})
    candidate = ModelVersionFactory(version="2026.11.24", metrics={"accuracy": 0.929})
    return current, candidate


def test_models_page_links_to_the_confirmation_instead_of_switching(client_for, steward, versions):
    current, candidate = versions
    page = client_for(steward).get(reverse("inference:list")).content.decode()
    url = reverse("inference:activate", args=[candidate.pk])
    assert f'href="{url}"' in page
    assert f'action="{url}"' not in page


def test_confirmation_page_says_what_will_happen_and_changes_nothing(client_for, steward, versions):
    current, candidate = versions
    response = client_for(steward).get(reverse("inference:activate", args=[candidate.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"instead of <strong>{current}</strong>" in page
    assert "keep their predictions" in page and "0.929" in page and "0.910" in page
    assert f'action="{reverse("inference:activate", args=[candidate.pk])}"' in page
    assert ModelVersion.active_for("brain-tumour") == current
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.MODEL_SWITCH).exists()


def test_confirming_switches_and_audits(client_for, steward, versions):
    current, candidate = versions
    response = client_for(steward).post(reverse("inference:activate", args=[candidate.pk]))
    assert response.status_code == 302
    assert ModelVersion.active_for("brain-tumour") == candidate
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.MODEL_SWITCH)
    assert event.detail["previous"] == str(current) and event.detail["active"] == str(candidate)


def test_the_active_version_needs_no_confirmation(client_for, steward, versions):
    current, _ = versions
    response = client_for(steward).get(reverse("inference:activate", args=[current.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("inference:list")


def test_clinicians_do_not_see_the_confirmation(client_for, owner, versions):
    _, candidate = versions
    assert client_for(owner).get(reverse("inference:activate", args=[candidate.pk])).status_code == 403
