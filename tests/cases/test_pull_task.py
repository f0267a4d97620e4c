"""The pull task's bounds (cases/tasks.py, cases/pacs_pull.py run_pull), without a PACS: a pull
whose message keeps coming back (its worker died each time) and a retry the broker does not take
end failed, with the source UID forgotten, instead of staying pending for ever."""

import pytest
from celery.exceptions import Reject
from django.contrib.auth import get_user_model
from kombu.exceptions import OperationalError

from cases import pacs_pull
from cases.models import Case, StudyImport
from cases.tasks import pull_study

pytestmark = pytest.mark.django_db

UID = "1.2.840.113619.2.55.3.604688119.971.1"


@pytest.fixture
def pacs_set(settings):
    settings.PACS_URL = "http://127.0.0.1:9/dicom-web"  # nothing listens: refused at once
    settings.PACS_TIMEOUT = 1


def pending_pull(team, owner, **fields):
    record = pacs_pull.request_pull(UID, team=team, user=owner, publish=False)
    StudyImport.objects.filter(pk=record.pk).update(**fields)
    return record


def test_a_pull_redelivered_after_its_last_attempt_fails_instead_of_running_again(
    pacs_set, team, owner, monkeypatch
):
    # The worker was killed mid-fetch on every attempt (acks_late redelivers the message each time).
    record = pending_pull(team, owner, status=StudyImport.Status.FETCHING, attempts=pacs_pull.PULL_ATTEMPTS)

    def must_not_fetch(*args, **kwargs):
        raise AssertionError("fetched again past its attempts")

    monkeypatch.setattr(pacs_pull, "import_study", must_not_fetch)
    assert pacs_pull.run_pull(record.pk) is None

    record.refresh_from_db()
    assert record.status == StudyImport.Status.FAILED
    assert record.attempts == pacs_pull.PULL_ATTEMPTS
    assert f"Gave up after {pacs_pull.PULL_ATTEMPTS} attempts" in record.reason
    assert record.study_uid == ""


def test_a_pull_with_attempts_left_is_still_fetched_on_redelivery(pacs_set, team, owner, monkeypatch):
    record = pending_pull(team, owner, status=StudyImport.Status.FETCHING, attempts=1)
    fetched = []
    monkeypatch.setattr(pacs_pull, "import_study", lambda uid, **kwargs: fetched.append(uid))
    pacs_pull.run_pull(record.pk)
    assert fetched == [UID]
    record.refresh_from_db()
    assert record.attempts == 2


def test_a_retry_the_broker_does_not_take_fails_the_pull_with_the_reason(pacs_set, team, owner, monkeypatch):
    record = pending_pull(team, owner)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(pull_study, "apply_async", broker_down)
    # As a worker runs it (not eager, which would run the retry in place): the retry is sent.
    pull_study.push_request(
        id="pull-1", args=[record.pk], kwargs={}, retries=0, is_eager=False, called_directly=False
    )
    try:
        # Celery rejects the message when its retry cannot be sent: nothing would run the pull again.
        with pytest.raises(Reject):
            pull_study.run(record.pk)
    finally:
        pull_study.pop_request()

    record.refresh_from_db()
    assert record.status == StudyImport.Status.FAILED, record.reason
    assert "task queue is unavailable" in record.reason and "could not connect" in record.reason
    assert record.study_uid == ""
    assert not Case.objects.exists()


def test_a_persons_account_named_like_the_pacs_account_is_not_taken_over(team):
    from django.contrib.auth import get_user_model

    from cases.models import Membership
    from cases.pacs_import import ImportRejected, service_account

    person = get_user_model().objects.create_user(f"pacs-team-{team.pk}", password="a-real-password-1")
    with pytest.raises(ImportRejected, match="can log in"):
        service_account(team)
    assert not Membership.objects.filter(user=person).exists()
    assert not Case.objects.exists()


def test_the_pacs_account_is_made_once_cannot_log_in_and_is_the_teams(team):
    from cases.models import Membership
    from cases.pacs_import import service_account

    account = service_account(team)
    assert not account.has_usable_password()
    assert service_account(team) == account
    assert Membership.objects.filter(user=account, team=team).exists()


def test_the_teams_pacs_account_is_its_member_with_the_pacs_role(team, pacs_account, owner):
    from cases.pacs_import import service_account

    assert service_account(team) == pacs_account
    assert not get_user_model().objects.filter(username=f"pacs-team-{team.pk}").exists()


def test_the_pacs_account_made_for_pulls_has_the_pacs_role(team):
    from cases.pacs_import import service_account
    from cases.roles import is_pacs_account

    account = service_account(team)
    assert account.username == f"pacs-team-{team.pk}" and is_pacs_account(account)
    assert list(account.groups.values_list("name", flat=True)) == ["pacs"]


def test_an_earlier_versions_pacs_account_takes_the_pacs_role_instead_of_clinician(team):
    from cases.models import Membership
    from cases.pacs_import import service_account
    from cases.roles import ensure_groups

    earlier = get_user_model().objects.create_user(f"pacs-team-{team.pk}", password=None)
    earlier.groups.add(ensure_groups()[0])
    Membership.objects.create(user=earlier, team=team)

    assert service_account(team) == earlier
    assert list(earlier.groups.values_list("name", flat=True)) == ["pacs"]


def test_an_account_named_like_the_pacs_account_with_another_role_is_not_taken_over(team):
    from cases.models import Membership
    from cases.pacs_import import ImportRejected, service_account
    from cases.roles import ensure_groups

    other = get_user_model().objects.create_user(f"pacs-team-{team.pk}", password=None)
    other.groups.add(ensure_groups()[1])
    Membership.objects.create(user=other, team=team)
    with pytest.raises(ImportRejected, match="another role"):
        service_account(team)
    assert list(other.groups.values_list("name", flat=True)) == ["steward"]


def test_a_refusal_names_the_pacs_without_the_credentials_in_its_url():
    from cases.pacs import Pacs, PacsConfig, PacsUnavailable

    pacs = Pacs(PacsConfig(url="http://someone:s3cret@127.0.0.1:9/dicom-web", timeout=1))
    with pytest.raises(PacsUnavailable) as raised:
        pacs.find_study(UID)
    assert "127.0.0.1:9" in str(raised.value) and "s3cret" not in str(raised.value)
    assert "someone" not in str(raised.value)
