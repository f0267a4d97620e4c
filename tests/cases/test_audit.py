"""The audit trail names the client address of every event recorded during a request (pages, API,
admin, login), believes X-Forwarded-For only from TRUSTED_PROXIES, and the steward's audit log
names objects as people know them: a case by its pseudonym, a review by its scan."""

import csv
import io
import ipaddress

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import AuditEvent
from tests.factories import PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db

CLIENT = "203.0.113.5"


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]


def test_a_page_records_the_client_address(client_for, owner, case):
    client = client_for(owner)
    assert client.get(reverse("cases:detail", args=[case.pk]), REMOTE_ADDR=CLIENT).status_code == 200
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.CASE_VIEW)
    assert event.client_ip == CLIENT


def test_behind_a_trusted_proxy_the_forwarded_client_is_recorded(behind_proxy, client_for, owner, case):
    client = client_for(owner)
    client.get(
        reverse("cases:detail", args=[case.pk]), REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7"
    )
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.CASE_VIEW).client_ip == "198.51.100.7"


def test_a_forwarded_header_from_anyone_else_is_ignored(behind_proxy, client_for, owner, case):
    client = client_for(owner)
    client.get(reverse("cases:detail", args=[case.pk]), REMOTE_ADDR=CLIENT, HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.CASE_VIEW).client_ip == CLIENT


def test_the_api_records_the_client_address(owner, case):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    assert client.get(f"/api/v1/cases/{case.pk}/", REMOTE_ADDR=CLIENT).status_code == 200
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.CASE_VIEW).client_ip == CLIENT


def test_a_failed_login_records_the_client_address(owner):
    Client().post(reverse("login"), {"username": "owner", "password": "wrong"}, REMOTE_ADDR=CLIENT)
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.LOGIN_FAILED)
    assert event.client_ip == CLIENT and event.detail == {"username": "owner"}


def test_an_admin_action_records_the_client_address(client_for, steward, case):
    ScanFactory(case=case)
    client_for(steward).post(
        reverse("admin:cases_case_changelist"),
        {"action": "erase_images", "_selected_action": [case.pk], "post": "yes"},
        REMOTE_ADDR=CLIENT,
    )
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.ERASE).client_ip == CLIENT


def test_events_outside_a_request_have_no_address(client_for, owner, case):
    client_for(owner).get(reverse("cases:detail", args=[case.pk]), REMOTE_ADDR=CLIENT)
    # As the worker or a management command records, after the request has ended.
    event = AuditEvent.record(None, AuditEvent.Verb.TRAINING_EXPORT, files=0)
    assert event.client_ip is None


def test_a_request_without_an_ip_address_still_records(client_for, owner, case):
    client_for(owner).get(reverse("cases:detail", args=[case.pk]), REMOTE_ADDR="")
    assert AuditEvent.objects.get(verb=AuditEvent.Verb.CASE_VIEW).client_ip is None


def test_audit_log_names_cases_by_pseudonym_and_reviews_by_their_scan(client_for, steward, owner, case):
    prediction = PredictionFactory(scan__case=case)
    review = ReviewFactory(prediction=prediction, reviewer=owner)
    client = client_for(steward)
    client.get(reverse("cases:detail", args=[case.pk]), REMOTE_ADDR=CLIENT)
    AuditEvent.record(owner, AuditEvent.Verb.REVIEW, prediction, case=case.pk, label=review.label)
    AuditEvent.record(steward, AuditEvent.Verb.SCAN_RELEASE, prediction.scan, case=case.pk)
    scan_name = f"scan {prediction.scan_id} of {case.pseudonym}"

    listing = client.get(reverse("admin:cases_auditevent_changelist")).content.decode()
    assert f'<td class="field-subject">{case.pseudonym}</td>' in listing
    assert listing.count(f'<td class="field-subject">{scan_name}</td>') == 2
    assert f'<td class="field-client_ip">{CLIENT}</td>' in listing

    found = client.get(reverse("admin:cases_auditevent_changelist"), {"q": case.pseudonym}).content.decode()
    assert found.count('<td class="field-subject">') == 3

    response = client.get(reverse("admin:cases_auditevent_export"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    by_verb = {row["verb"]: row for row in rows}
    assert by_verb["case_view"]["object"] == case.pseudonym
    assert by_verb["case_view"]["client_ip"] == CLIENT
    assert by_verb["review"]["object"] == scan_name
    assert by_verb["scan_release"]["object"] == scan_name

    event = AuditEvent.objects.get(verb=AuditEvent.Verb.REVIEW)
    page = client.get(reverse("admin:cases_auditevent_change", args=[event.pk])).content.decode()
    assert scan_name in page
