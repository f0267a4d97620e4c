"""Consent per case and scope: current state, append-only history, the with_consent queryset."""

import pytest

from cases.models import AuditEvent, Case, Consent, ConsentEvent, cases_with_consent
from tests.factories import CaseFactory

pytestmark = pytest.mark.django_db


def test_no_record_means_pending_and_excluded(case):
    assert Consent.state_of(case, Consent.Scope.ANALYTICS) == Consent.State.PENDING
    assert not Case.objects.with_consent(Consent.Scope.ANALYTICS).exists()


def test_granted_case_is_included_only_for_that_scope(case, steward):
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    assert list(cases_with_consent(Consent.Scope.ANALYTICS)) == [case]
    assert not cases_with_consent(Consent.Scope.TRAINING).exists()
    assert list(Case.objects.without_consent(Consent.Scope.TRAINING)) == [case]


def test_withdrawal_excludes_at_once_and_history_is_kept(case, steward, team, owner):
    other = CaseFactory(team=team, created_by=owner)
    Consent.record(case, Consent.Scope.TRAINING, Consent.State.GRANTED, steward)
    Consent.record(other, Consent.Scope.TRAINING, Consent.State.GRANTED, steward)
    Consent.record(case, Consent.Scope.TRAINING, Consent.State.WITHDRAWN, steward, note="patient asked")

    assert list(cases_with_consent(Consent.Scope.TRAINING)) == [other]
    history = list(ConsentEvent.objects.filter(case=case).values_list("state", "recorded_by__username"))
    assert history == [("granted", "steward"), ("withdrawn", "steward")]
    assert Consent.objects.get(case=case, scope=Consent.Scope.TRAINING).note == "patient asked"
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.CONSENT, object_id=str(case.pk)).count() == 2


def test_history_is_append_only(case, steward):
    Consent.record(case, Consent.Scope.CLINICAL, Consent.State.REFUSED, steward)
    event = ConsentEvent.objects.get()
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        ConsentEvent.objects.all().delete()
    with pytest.raises(PermissionError):
        ConsentEvent.objects.update(state=Consent.State.GRANTED)


def test_unknown_scope_or_state_is_refused(case, steward):
    with pytest.raises(ValueError):
        Consent.record(case, "marketing", Consent.State.GRANTED, steward)
    with pytest.raises(ValueError):
        Consent.record(case, Consent.Scope.ANALYTICS, "maybe", steward)
    assert not ConsentEvent.objects.exists()


def test_withdrawal_removes_the_case_from_field_performance_at_once(case, steward):
    from analytics.performance import field_performance
    from tests.factories import ReviewFactory

    ReviewFactory(prediction__scan__case=case)

    def reviews_counted():
        return sum(version["reviews"] for version in field_performance()["versions"])

    assert reviews_counted() == 0  # pending consent: not counted
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.GRANTED, steward)
    assert reviews_counted() == 1
    Consent.record(case, Consent.Scope.ANALYTICS, Consent.State.WITHDRAWN, steward)
    assert reviews_counted() == 0
