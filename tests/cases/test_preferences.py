"""The Preferences page: a per-user time zone (default settings.TIME_ZONE), applied by middleware
to every page; the pages' times name their zone."""

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from cases.models import AuditEvent, Case
from cases.preferences import Preference

pytestmark = pytest.mark.django_db


def test_default_is_the_server_time_zone_and_the_header_links_the_page(owner_client, case, settings):
    page = owner_client.get(reverse("cases:list")).content.decode()
    assert f'href="{reverse("cases:preferences")}"' in page
    form = owner_client.get(reverse("cases:preferences")).content.decode()
    assert f"Server default ({settings.TIME_ZONE})" in form and "Europe/Berlin" in form


def test_chosen_time_zone_applies_to_every_page_and_names_the_zone(client_for, owner, teammate, case):
    Case.objects.filter(pk=case.pk).update(created_at=datetime(2026, 7, 1, 10, 30, tzinfo=UTC))
    owner_client = client_for(owner)
    response = owner_client.post(reverse("cases:preferences"), {"time_zone": "Europe/Berlin"}, follow=True)
    assert "times are shown in Europe/Berlin" in response.content.decode()
    assert Preference.objects.get(user=owner).time_zone == "Europe/Berlin"

    detail = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "created 2026-07-01 12:30 CEST" in detail
    listed = owner_client.get(reverse("cases:list")).content.decode()
    assert re.search(r'title="opened 2026-07-01 12:30 CEST"', listed)
    # Someone else still sees the server's zone: the preference is per user, the cache per zone.
    other = client_for(teammate).get(reverse("cases:list")).content.decode()
    assert 'title="opened 2026-07-01 10:30 UTC"' in other


def test_an_unknown_zone_is_refused_and_nothing_is_audited(owner_client, owner):
    before = AuditEvent.objects.count()
    response = owner_client.post(reverse("cases:preferences"), {"time_zone": "Mars/Olympus"})
    assert response.status_code == 400 and not Preference.objects.exists()
    owner_client.post(reverse("cases:preferences"), {"time_zone": "Asia/Tokyo"})
    # Display preferences are not audited (roles, groups, active flag and password are).
    assert AuditEvent.objects.count() == before
