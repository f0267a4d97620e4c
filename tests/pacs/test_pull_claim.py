"""A pull is stored only by the attempt that holds its claim (cases.pacs_pull.claim,
cases.pacs_import.store_batches): one the sweep handed to another message while it fetched stores
nothing. Real slices, no PACS: the fetch is replaced by the slices it would return."""

import pytest

from cases import pacs_import, pacs_pull
from cases.models import Case, StudyImport
from ml.dicomseries import build_series

pytestmark = pytest.mark.django_db


def test_a_pull_handed_to_another_attempt_while_it_fetched_stores_nothing(
    settings, lgg_slices, team, owner, monkeypatch
):
    # The sweep re-announced a slow pull and the new message claimed it: only that one stores.
    settings.PACS_URL = "http://127.0.0.1:9/dicom-web"
    series = build_series(lgg_slices[:2])
    record = pacs_pull.request_pull(series[0].StudyInstanceUID, team=team, user=owner, publish=False)

    def slow_fetch(uid, *, team, user, case, record):
        StudyImport.objects.filter(pk=record.pk).update(claim_token="the-re-announced-message")
        return pacs_import.store_datasets(series, team=team, user=user, case=case, record=record)

    monkeypatch.setattr(pacs_pull, "import_study", slow_fetch)
    assert pacs_pull.run_pull(record.pk, claim_token="the-first-message") is None

    record.refresh_from_db()
    assert (record.status, record.claim_token) == (StudyImport.Status.FETCHING, "the-re-announced-message")
    assert record.case is None and record.study_uid == series[0].StudyInstanceUID
    assert not Case.objects.exists()


def test_the_attempt_holding_a_pull_stores_it(settings, lgg_slices, team, owner, monkeypatch):
    settings.PACS_URL = "http://127.0.0.1:9/dicom-web"
    series = build_series(lgg_slices[:2])
    record = pacs_pull.request_pull(series[0].StudyInstanceUID, team=team, user=owner, publish=False)
    monkeypatch.setattr(
        pacs_pull,
        "import_study",
        lambda uid, *, team, user, case, record: pacs_import.store_datasets(
            series, team=team, user=user, case=case, record=record
        ),
    )
    done = pacs_pull.run_pull(record.pk, claim_token="the-message")
    assert (done.status, done.scan_count, done.claim_token) == (StudyImport.Status.DONE, 2, "the-message")
