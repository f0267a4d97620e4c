"""A series review answers only for the slices its verdict covered when it was recorded: a slice
that joins the series later (a later upload or pull) and the verdict judged again over it are not
reviewed until someone reviews the series again; the earlier review stays, as history."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases import questions, worklist
from cases.forms_series import SeriesReviewForm
from cases.models import Case, QuestionSettled, Scan
from inference.models import SeriesVerdict
from inference.series_verdict import refresh
from tests.factories import ModelVersionFactory, PredictionFactory, ScanFactory
from tests.inference.test_series_review import series_with_verdict
from tests.inference.test_series_verdict import with_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def grown_series(case, teammate, settings, tmp_path):
    """Three slices whose series verdict a teammate reviewed; then a fourth slice of the same series
    arrives, is answered, and the pipeline judges the series again over all four."""
    settings.ML_MODELS_ROOT = tmp_path
    card = {"tumour_threshold": 0.5, "no_finding_class": "notumor"}
    version = ModelVersionFactory(is_active=True, card=card)
    with_rule(tmp_path, version, {"kind": "max", "k": 1, "threshold": 0.5})
    verdict, seen = series_with_verdict(case, version=version)
    review = SeriesReviewForm({"label": "glioma"}, verdict=verdict).save(teammate)
    later = ScanFactory(
        case=case, series=verdict.series, series_instance=4, status=Scan.Status.DONE, outcome="classified"
    )
    PredictionFactory(scan=later, model_version=version)
    refresh(verdict.series_id)
    return verdict, review, seen, later


def test_the_review_covers_the_slices_its_verdict_judged_then(grown_series):
    verdict, review, seen, later = grown_series

    verdict.refresh_from_db()
    assert verdict.scan_ids == [scan.pk for scan in seen] + [later.pk]
    assert sorted(review.scans.values_list("pk", flat=True)) == [scan.pk for scan in seen]


def test_a_slice_added_after_the_review_is_not_reviewed(grown_series, case):
    _, _, seen, later = grown_series

    assert all(Scan.objects.get(pk=scan.pk).is_reviewed for scan in seen)
    assert not Scan.objects.get(pk=later.pk).is_reviewed
    annotated = {scan.pk: scan.is_reviewed for scan in Scan.objects.filter(case=case).with_series_reviewed()}
    assert annotated == {scan.pk: True for scan in seen} | {later.pk: False}


def test_the_worklist_counts_it_unreviewed(grown_series, case):
    summary = worklist.annotate(Case.objects.filter(pk=case.pk)).get()

    assert (summary.scans_reviewed, summary.scans_to_review) == (3, 4)
    assert worklist.review_state(summary) == worklist.ReviewState.SOME


def test_its_uploader_may_still_retract_it_and_rerun_it(grown_series, owner):
    _, _, seen, later = grown_series

    Scan.objects.get(pk=later.pk).check_retractable(owner)  # no refusal
    questions._check_reaskable(Scan.objects.get(pk=later.pk), "dementia-mri")  # no refusal
    with pytest.raises(Exception, match="has been reviewed"):
        Scan.objects.get(pk=seen[0].pk).check_retractable(owner)


def test_the_question_stays_settled_by_the_earlier_review(grown_series, case, owner):
    with pytest.raises(QuestionSettled):
        Case.objects.get(pk=case.pk).change(owner, task="dementia-mri")


def test_the_case_page_shows_the_verdict_judged_again_as_not_reviewed(grown_series, case, owner_client):
    verdict, _, _, _ = grown_series

    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    after = page.split(f'id="series-verdict-{verdict.series_id}"', 1)[1]
    panel = after.split('class="series-review-form"')[0]

    assert panel.startswith(' data-reviewed="false"')
    assert "Series confirmed" in panel  # the earlier review stays, as history
    assert "of an earlier judgement over 3 of its slices" in panel


def test_the_api_shows_the_verdict_not_reviewed_and_what_the_review_covered(grown_series, case, owner):
    verdict, review, seen, _ = grown_series
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")

    body = api.get(f"/api/v1/cases/{case.pk}/series/").json()
    shown = body[0]["series"][0]["verdict"]

    assert shown["reviewed"] is False
    assert [(r["id"], r["scans"], r["covers_verdict"]) for r in shown["reviews"]] == [
        (review.pk, [scan.pk for scan in seen], False)
    ]


def test_reviewing_it_again_covers_every_slice(grown_series, case, owner):
    verdict, _, _, later = grown_series

    SeriesReviewForm({"label": "glioma"}, verdict=SeriesVerdict.objects.get(pk=verdict.pk)).save(owner)

    assert Scan.objects.get(pk=later.pk).is_reviewed
    summary = worklist.annotate(Case.objects.filter(pk=case.pk)).get()
    assert (summary.scans_reviewed, summary.scans_to_review) == (4, 4)
