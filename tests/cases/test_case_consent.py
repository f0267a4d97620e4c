"""The case page shows each consent scope read-only, with who recorded it and when, and says
what missing research consent means (analytics.consent.usable_reviews is the rule)."""

import re

import pytest
from django.urls import reverse

from cases.models import Consent

pytestmark = pytest.mark.django_db


def _text(html):
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_consent_states_show_who_recorded_them_and_when(owner_client, case, steward):
    Consent.record(case, Consent.Scope.CLINICAL, Consent.State.GRANTED, steward)
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.WITHDRAWN, steward)
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    panel = _text(re.search(r'<section class="panel" id="consent">.*?</section>', page, re.S).group(0))
    assert re.search(r"Clinical care Granted steward \d{4}-\d\d-\d\d \d\d:\d\d UTC", panel)
    assert re.search(r"Analytics and research Withdrawn steward", panel)
    assert "Model training Pending (nothing recorded)" in panel
    assert "reviews are not counted in field performance" in panel
    assert "Analytics and research granted by steward" in panel
    assert "Analytics and research withdrawn by steward" in panel
    # Read-only for a clinician: no form, no link to the admin.
    assert "<form" not in panel and "/admin/" not in page


def test_with_research_consent_the_warning_goes_and_a_steward_gets_the_admin_link(client_for, case, steward):
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    page = client_for(steward).get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "not counted in field performance" not in page
    assert reverse("admin:cases_case_change", args=[case.pk]) in page
