"""The sweep of lost pulls (cases/pacs_pull.py sweep_lost_pulls, the beat task
cases.tasks.sweep_lost_pulls), without a PACS or a broker: a pull whose message was lost is
re-announced while it has attempts left and failed with the reason once it has none, and a
re-announced pull is fetched by one attempt at a time."""

from datetime import timedelta

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from cases import pacs_pull
from cases.models import StudyImport
from cases.tasks import sweep_lost_pulls

pytestmark = pytest.mark.django_db

UID = "1.2.840.113619.2.55.3.604688119.971.1"


@pytest.fixture
def pacs_set(settings):
    settings.PACS_URL = "http://127.0.0.1:9/dicom-web"  # nothing listens
    settings.PACS_PULL_LOST_AFTER = timedelta(seconds=900)


@pytest.fixture
def announced(monkeypatch):
    sent = []
    monkeypatch.setattr(pacs_pull.current_app, "send_task", lambda name, args: sent.append((name, *args)))
    return sent


def pull(team, owner, age_s, **fields):
    record = pacs_pull.request_pull(UID, team=team, user=owner, publish=False)
    changed = timezone.now() - timedelta(seconds=age_s)
    StudyImport.objects.filter(pk=record.pk).update(updated_at=changed, **fields)
    return record


def test_a_queued_pull_older_than_the_limit_is_announced_again(pacs_set, team, owner, announced):
    record = pull(team, owner, 901)
    assert sweep_lost_pulls() == [record.pk]
    assert announced == [(pacs_pull.PULL_TASK, record.pk)]
    record.refresh_from_db()
    assert record.status == StudyImport.Status.QUEUED and record.study_uid == UID
    assert timezone.now() - record.updated_at < timedelta(seconds=60)
    assert sweep_lost_pulls() == []  # not again until it has waited the limit once more


def test_a_fetching_pull_whose_worker_is_gone_is_handed_out_unclaimed(pacs_set, team, owner, announced):
    record = pull(team, owner, 901, status=StudyImport.Status.FETCHING, claim_token="lost", attempts=2)
    assert sweep_lost_pulls() == [record.pk]
    record.refresh_from_db()
    assert (record.status, record.claim_token, record.attempts) == (StudyImport.Status.QUEUED, "", 2)


def test_a_fetching_pull_with_no_attempts_left_is_failed_with_the_reason(pacs_set, team, owner, announced):
    attempts = pacs_pull.PULL_ATTEMPTS
    record = pull(team, owner, 901, status=StudyImport.Status.FETCHING, claim_token="lost", attempts=attempts)
    assert sweep_lost_pulls() == []
    assert announced == []
    record.refresh_from_db()
    assert record.status == StudyImport.Status.FAILED
    assert f"Gave up after {attempts} attempts: the pull was lost each time" in record.reason
    assert record.study_uid == ""


def test_a_fresh_pull_is_left_alone(pacs_set, team, owner, announced):
    queued = pull(team, owner, 600)
    fetching = pull(team, owner, 600, status=StudyImport.Status.FETCHING, claim_token="busy", attempts=1)
    assert sweep_lost_pulls() == [] and announced == []
    assert StudyImport.objects.get(pk=queued.pk).status == StudyImport.Status.QUEUED
    assert StudyImport.objects.get(pk=fetching.pk).claim_token == "busy"


def test_a_done_or_failed_pull_is_never_touched(pacs_set, team, owner, announced):
    done = pull(team, owner, 10**6, status=StudyImport.Status.DONE, study_uid="", attempts=1)
    failed = pull(team, owner, 10**6, status=StudyImport.Status.FAILED, study_uid="", reason="no such study")
    before = {row.pk: (row.status, row.reason, row.updated_at) for row in StudyImport.objects.all()}
    assert sweep_lost_pulls() == [] and announced == []
    after = {row.pk: (row.status, row.reason, row.updated_at) for row in StudyImport.objects.all()}
    assert after == before and set(after) == {done.pk, failed.pk}


def test_a_pull_the_broker_refuses_stays_queued_for_the_next_sweep(pacs_set, team, owner, monkeypatch):
    first, second = pull(team, owner, 901), pull(team, owner, 901)
    tried = []

    def broker_down(name, args):
        tried.append(args)
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(pacs_pull.current_app, "send_task", broker_down)
    assert sweep_lost_pulls() == []
    assert len(tried) == 1  # stops at the first refusal: the broker is down
    for record in (first, second):
        record.refresh_from_db()
        assert record.status == StudyImport.Status.QUEUED and record.study_uid == UID


def test_a_re_announced_pull_is_not_fetched_by_a_second_message_while_the_first_holds_it(
    pacs_set, team, owner, monkeypatch
):
    record = pull(team, owner, 0)
    fetched = []
    monkeypatch.setattr(pacs_pull, "import_study", lambda uid, **kwargs: fetched.append(uid))
    assert pacs_pull.claim(record.pk, "first")
    assert pacs_pull.run_pull(record.pk, claim_token="second") is None
    assert fetched == []
    record.refresh_from_db()
    assert (record.status, record.claim_token, record.attempts) == (StudyImport.Status.FETCHING, "first", 1)
    # A redelivery of the first message takes it over (its worker died).
    pacs_pull.run_pull(record.pk, claim_token="first")
    assert fetched == [UID]


def test_a_re_announced_pull_on_its_last_attempt_fails_instead_of_deferring(pacs_set, team, owner):
    # Celery counts retries from 0 for the sweep's new message: the recorded attempts bound it.
    record = pull(team, owner, 0, attempts=pacs_pull.PULL_ATTEMPTS - 1)
    assert pacs_pull.run_pull(record.pk, claim_token="from-the-sweep") is not None
    record.refresh_from_db()
    assert record.status == StudyImport.Status.FAILED, record.reason
    assert f"after {pacs_pull.PULL_ATTEMPTS} attempt(s)" in record.reason


def test_the_sweep_is_scheduled(settings):
    from brainscan.celery import app

    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "cases.tasks.sweep_lost_pulls" in entries and "cases.tasks.sweep_lost_pulls" in app.tasks
