"""The case list as a worklist: counts, review state, age, reading order, quick filters, the
clinicians' verdict once every scan is reviewed, and a constant number of queries."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cases.models import Case, Scan
from tests.factories import CaseFactory, ModelVersionFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db


def _rows(client, **params):
    page = client.get(reverse("cases:list"), params).content.decode()
    return re.findall(r'<tr class="priority-\d" data-case="(\d+)">(.*?)</tr>', page, re.S)


def _row_text(row_html):
    return " ".join(re.sub(r"<[^>]+>", " ", row_html).split())


def _aged(case, hours):
    """Opened ``hours`` ago, and its scans (if any) uploaded then too."""
    then = timezone.now() - timedelta(hours=hours)
    Case.objects.filter(pk=case.pk).update(created_at=then)
    Scan.objects.filter(case=case).update(uploaded_at=then)
    return case


def _predicted(case, *, reviewed=False, suspected=True, outcome=Scan.Outcome.CLASSIFIED, label="glioma"):
    scan = ScanFactory(case=case, status=Scan.Status.DONE, outcome=outcome)
    prediction = PredictionFactory(scan=scan, tumour_suspected=suspected, label=label)
    if reviewed:
        ReviewFactory(prediction=prediction, label=label)
    return prediction


def test_unreviewed_suspected_first_then_uncertain_then_the_rest_oldest_first(owner_client, team, owner):
    plain_old = _aged(CaseFactory(team=team, created_by=owner), 50)
    uncertain = CaseFactory(team=team, created_by=owner, flag=Case.Flag.UNCERTAIN)
    _predicted(uncertain, suspected=False, outcome=Scan.Outcome.UNCERTAIN)
    suspected_new = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    _predicted(suspected_new)
    suspected_old = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    _predicted(suspected_old)
    reviewed_suspected = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    _predicted(reviewed_suspected, reviewed=True)
    for case, hours in [(uncertain, 5), (suspected_new, 1), (suspected_old, 3), (reviewed_suspected, 90)]:
        _aged(case, hours)

    order = [int(pk) for pk, _ in _rows(owner_client)]
    assert order == [suspected_old.pk, suspected_new.pk, uncertain.pk, reviewed_suspected.pk, plain_old.pk]
    page = owner_client.get(reverse("cases:list")).content.decode()
    assert "Unreviewed cases with a suspected tumour first" in page


def test_row_shows_scan_counts_review_state_and_age(owner_client, team, owner):
    case = _aged(CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED), 30)
    _predicted(case, reviewed=True)  # uploaded now, 30 hours after the case was opened
    _predicted(case)
    ScanFactory(case=case)  # queued
    ScanFactory(case=case, retracted_at=timezone.now())  # left the case
    ((_, row),) = _rows(owner_client)
    text = _row_text(row)
    assert "2/3" in text  # classified/total
    assert "Some (1/2)" in text
    assert "Tumour suspected – review" in text
    assert "since last upload" in text  # the scans came after the case was opened

    fresh = CaseFactory(team=team, created_by=owner)
    _aged(fresh, 26)
    rows = dict(_rows(owner_client))
    assert "1 day since opened" in _row_text(rows[str(fresh.pk)])
    assert "just now since last upload" in _row_text(rows[str(case.pk)])
    assert "nothing to review" in _row_text(rows[str(fresh.pk)])


def test_a_fully_reviewed_case_shows_the_clinicians_verdict_beside_the_ai_flag(owner_client, team, owner):
    tumour = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    _predicted(tumour, reviewed=True, label="glioma")
    clear = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    prediction = _predicted(clear, label="glioma")
    ReviewFactory(prediction=prediction, label="notumor", decision="corrected")
    _predicted(clear, reviewed=True, label="notumor", suspected=False)
    half = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    _predicted(half, reviewed=True)
    _predicted(half)

    rows = {pk: _row_text(row) for pk, row in _rows(owner_client)}
    assert "Reviewed: tumour (glioma)" in rows[str(tumour.pk)]
    # The AI's flag stays beside it, no longer asking for a review.
    assert "Tumour suspected" in rows[str(tumour.pk)] and "– review" not in rows[str(tumour.pk)]
    assert "Reviewed: no tumour" in rows[str(clear.pk)]
    assert "Reviewed:" not in rows[str(half.pk)] and "Some (1/2)" in rows[str(half.pk)]


def test_an_amended_review_decides_the_verdict(owner_client, team, owner):
    case = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    prediction = _predicted(case, reviewed=True, label="glioma")
    ReviewFactory(prediction=prediction, reviewer=owner, label="notumor", decision="corrected")
    ((_, row),) = _rows(owner_client)
    assert "Reviewed: no tumour" in _row_text(row)


def test_quick_filters_combine_with_the_case_filters(owner_client, team, owner, teammate):
    mine_unreviewed = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    _predicted(mine_unreviewed)
    mine_reviewed = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
    _predicted(mine_reviewed, reviewed=True)
    uploaded_to = CaseFactory(team=team, created_by=teammate, flag=Case.Flag.UNCERTAIN)
    ScanFactory(case=uploaded_to, uploaded_by=owner)
    _predicted(uploaded_to, suspected=False)
    theirs = CaseFactory(team=team, created_by=teammate, flag=Case.Flag.TUMOUR_SUSPECTED)
    _predicted(theirs)

    def listed(**params):
        return {int(pk) for pk, _ in _rows(owner_client, **params)}

    assert listed(unreviewed="on") == {mine_unreviewed.pk, uploaded_to.pk, theirs.pk}
    assert listed(suspected="on") == {mine_unreviewed.pk, mine_reviewed.pk, theirs.pk}
    assert listed(mine="on") == {mine_unreviewed.pk, mine_reviewed.pk, uploaded_to.pk}
    assert listed(mine="on", unreviewed="on", suspected="on") == {mine_unreviewed.pk}
    assert listed(mine="on", q=uploaded_to.pseudonym) == {uploaded_to.pk}


def test_export_honours_the_quick_filters(owner_client, team, owner, teammate):
    mine = CaseFactory(team=team, created_by=owner)
    ScanFactory(case=mine)
    theirs = CaseFactory(team=team, created_by=teammate)
    ScanFactory(case=theirs)
    exported = b"".join(owner_client.get(reverse("cases:export"), {"mine": "on"}).streaming_content).decode()
    assert mine.pseudonym in exported and theirs.pseudonym not in exported


def test_fifty_case_worklist_runs_a_bounded_number_of_queries(
    owner_client, team, owner, django_assert_max_num_queries
):
    for index in range(50):
        case = CaseFactory(team=team, created_by=owner, flag=Case.Flag.TUMOUR_SUSPECTED)
        _predicted(case, reviewed=index % 2 == 0)
        ScanFactory(case=case)
    # session, user, time zone, role, count, rows with their counts, verdicts, teams
    with django_assert_max_num_queries(8):
        response = owner_client.get(reverse("cases:list"), {"page": 2})
    assert response.status_code == 200 and len(_rows(owner_client, page=2)) == 25


def test_a_reviewed_dementia_case_names_its_grade_not_a_tumour(owner_client, team, owner):
    case = CaseFactory(team=team, created_by=owner, task="dementia-mri")
    grades = ["NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"]
    version = ModelVersionFactory(name="dementia", task="dementia-mri", classes=grades)
    prediction = PredictionFactory(
        scan=ScanFactory(case=case, status=Scan.Status.DONE, outcome=Scan.Outcome.CLASSIFIED),
        model_version=version,
        label="MildDemented",
        tumour_suspected=False,
        tumour_probability=None,
    )
    ReviewFactory(prediction=prediction, reviewer=owner, label="MildDemented")
    ((_, row),) = _rows(owner_client)
    assert "Reviewed: MildDemented" in _row_text(row) and "tumour" not in _row_text(row).lower()
