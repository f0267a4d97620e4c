"""Steward tools in the admin: consent (with history), anonymisation reports, held scans, audit log
with filters and CSV export. Non-stewards reach none of them and cannot change consent."""

import csv
import io

import pytest
from django.urls import reverse

from cases.models import AnonymisationReport, AuditEvent, Case, Consent, ConsentEvent, Scan
from tests.factories import CaseFactory, ScanFactory

pytestmark = pytest.mark.django_db

STEWARD_PAGES = [
    "admin:cases_consent_changelist",
    "admin:cases_consent_add",
    "admin:cases_consentevent_changelist",
    "admin:cases_anonymisationreport_changelist",
    "admin:cases_scan_changelist",
    "admin:cases_auditevent_changelist",
    "admin:cases_auditevent_export",
    "admin:auth_user_changelist",
    "admin:cases_team_changelist",
]


@pytest.mark.parametrize("page", STEWARD_PAGES)
def test_steward_reaches_every_tool(client_for, steward, case, page):
    assert client_for(steward).get(reverse(page)).status_code == 200


@pytest.mark.parametrize("role", ["owner", "teammate", "outsider"])
@pytest.mark.parametrize("page", STEWARD_PAGES)
def test_signed_in_non_stewards_get_404(request, client_for, case, role, page):
    response = client_for(request.getfixturevalue(role)).get(reverse(page))
    assert response.status_code == 404


@pytest.mark.parametrize("page", STEWARD_PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client_for, case, page):
    response = client_for(None).get(reverse(page))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_clinician_who_is_staff_but_not_steward_gets_403(client_for, owner, case):
    owner.is_staff = True
    owner.save()
    client = client_for(owner)
    assert client.get(reverse("admin:cases_consent_changelist")).status_code == 403
    assert client.get(reverse("admin:cases_auditevent_export")).status_code == 403
    response = client.post(
        reverse("admin:cases_consent_add"), {"case": case.pk, "scope": "training", "state": "granted"}
    )
    assert response.status_code == 403
    assert not Consent.objects.exists() and not ConsentEvent.objects.exists()


def test_clinician_cannot_change_consent(client_for, owner, case):
    response = client_for(owner).post(
        reverse("admin:cases_consent_add"), {"case": case.pk, "scope": "analytics", "state": "granted"}
    )
    assert response.status_code == 404
    assert not Consent.objects.exists()
    assert not has_analytics_consent(case)


def has_analytics_consent(case):
    return Case.objects.with_consent(Consent.Scope.ANALYTICS).filter(pk=case.pk).exists()


def test_steward_records_consent_and_its_history_in_admin(client_for, steward, case):
    client = client_for(steward)
    response = client.post(
        reverse("admin:cases_consent_add"),
        {"case": case.pk, "scope": "analytics", "state": "granted", "note": "signed form"},
    )
    assert response.status_code == 302
    consent = Consent.objects.get()
    assert consent.recorded_by == steward and has_analytics_consent(case)

    response = client.post(
        reverse("admin:cases_consent_change", args=[consent.pk]), {"state": "withdrawn", "note": "phone call"}
    )
    assert response.status_code == 302
    assert not has_analytics_consent(case)
    assert list(ConsentEvent.objects.values_list("state", flat=True)) == ["granted", "withdrawn"]
    page = client.get(reverse("admin:cases_case_change", args=[case.pk]))
    assert b"Consent history" in page.content and b"phone call" in page.content


def test_steward_releases_held_scan_from_admin(client_for, steward, case, monkeypatch):
    enqueued = []
    monkeypatch.setattr("inference.tasks.enqueue_classification", enqueued.append)
    held = ScanFactory(case=case, status=Scan.Status.HELD)
    client = client_for(steward)
    listing = client.get(reverse("admin:cases_scan_changelist"), {"status__exact": "held"})
    assert f">{held.pk}<".encode() in listing.content
    response = client.post(
        reverse("admin:cases_scan_changelist"), {"action": "release", "_selected_action": [held.pk]}
    )
    assert response.status_code == 302
    held.refresh_from_db()
    assert held.status == Scan.Status.QUEUED
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.SCAN_RELEASE, object_id=str(held.pk)).exists()


def test_steward_erases_a_case_from_admin_after_confirming(client_for, steward, case):
    scan = ScanFactory(case=case)
    stored = scan.image.name
    client = client_for(steward)
    choice = {"action": "erase_images", "_selected_action": [case.pk]}
    confirmation = client.post(reverse("admin:cases_case_changelist"), choice)
    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert "cannot be recovered" in page and case.pseudonym in page and "1 of 1 scan still stored" in page
    assert 'name="post" value="yes"' in page
    scan.refresh_from_db()
    assert scan.erased_at is None and scan.image.storage.exists(stored)
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.ERASE).exists()

    response = client.post(reverse("admin:cases_case_changelist"), choice | {"post": "yes"})
    assert response.status_code == 302
    scan.refresh_from_db()
    assert scan.erased_at is not None and not scan.image
    assert not scan.image.storage.exists(stored)
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.ERASE, object_id=str(case.pk)).exists()


def test_clinician_who_is_staff_cannot_reach_the_erase_confirmation(client_for, owner, case):
    owner.is_staff = True
    owner.save()
    scan = ScanFactory(case=case)
    response = client_for(owner).post(
        reverse("admin:cases_case_changelist"), {"action": "erase_images", "_selected_action": [case.pk]}
    )
    assert response.status_code == 403
    scan.refresh_from_db()
    assert scan.erased_at is None


def test_anonymisation_report_is_visible_to_stewards(client_for, steward, owner, case):
    report = AnonymisationReport.objects.create(
        case=case,
        uploaded_by=owner,
        files=[
            {"scan": 1, "format": "DICOM", "removed": ["InstitutionName"], "replaced": ["SOPInstanceUID"]}
        ],
    )
    page = client_for(steward).get(reverse("admin:cases_anonymisationreport_change", args=[report.pk]))
    assert page.status_code == 200
    assert b"InstitutionName" in page.content and b"SOPInstanceUID" in page.content


def test_audit_log_filters_and_csv_export(client_for, steward, owner, teammate, case, team):
    other = CaseFactory(team=team, created_by=owner)
    AuditEvent.record(owner, AuditEvent.Verb.CASE_VIEW, case)
    AuditEvent.record(teammate, AuditEvent.Verb.CASE_VIEW, other)
    AuditEvent.record(owner, AuditEvent.Verb.EXPORT)
    client = client_for(steward)

    def exported(**filters):
        response = client.get(reverse("admin:cases_auditevent_export"), filters)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        assert response["Content-Disposition"].startswith('attachment; filename="brainscan-audit-')
        body = b"".join(response.streaming_content).decode()
        return list(csv.DictReader(io.StringIO(body)))

    by_actor = exported(actor="owner")
    assert {row["verb"] for row in by_actor} == {"case_view", "export"}
    by_verb_and_case = exported(verb__exact="case_view", case=str(other.pk))
    assert [(row["actor"], row["object_id"]) for row in by_verb_and_case] == [("teammate", str(other.pk))]
    today = exported(**{"created_at__gte": "2000-01-01 00:00:00+00:00", "actor": "teammate"})
    assert len(today) == 1
    assert exported(**{"created_at__lt": "2000-01-01 00:00:00+00:00"}) == []
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.AUDIT_EXPORT, actor=steward).count() == 4
    listing = client.get(reverse("admin:cases_auditevent_changelist"), {"actor": "teammate"})
    assert listing.status_code == 200 and b"Export these events as CSV" in listing.content
