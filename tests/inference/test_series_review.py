"""Reviews of a series verdict, through the case page and the API: the model version's labels,
the case's rules, audited; a bad label is a 400 and writes nothing; the case verdict and the
review counts take series reviews into account."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases import worklist
from cases.models import AuditEvent, Case, Scan, Series, Study
from inference.models import SeriesReview, SeriesVerdict
from tests.factories import ModelVersionFactory, PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_for(request):
    """An API client with the role's token (as tests/api's fixture of the same name)."""

    def make(role):
        client = APIClient()
        user = request.getfixturevalue(role)
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        return client

    return make


@pytest.fixture
def owner_api(api_for):
    return api_for("owner")


def series_with_verdict(case, *, suspected=True, slices=3, uid="2.25.7", has_rule=True, version=None):
    study, _ = Study.objects.get_or_create(case=case, study_uid="2.25.1")
    series = Series.objects.create(case=case, study=study, series_uid=uid, modality="MR")
    version = version or ModelVersionFactory(card={"no_finding_class": "notumor"})
    scans = []
    for i in range(slices):
        scan = ScanFactory(
            case=case, series=series, series_instance=i + 1, status=Scan.Status.DONE, outcome="classified"
        )
        PredictionFactory(scan=scan, model_version=version, tumour_suspected=suspected)
        scans.append(scan)
    verdict = SeriesVerdict.objects.create(
        series=series,
        model_version=version,
        has_rule=has_rule,
        no_rule_reason="" if has_rule else f"model {version} ships no series rule",
        rule={"kind": "max", "k": 1, "threshold": 0.0693} if has_rule else {},
        tumour_suspected=suspected if has_rule else None,
        score=0.98 if suspected else 0.01,
        label=("glioma" if suspected else "notumor") if has_rule else "",
        probability=0.9,
        most_suspicious=[{"scan": s.pk, "slice": i + 1, "probability": 0.9} for i, s in enumerate(scans)],
        scan_ids=[s.pk for s in scans],
        slices=slices,
        answered=slices,
    )
    return verdict, scans


def page_post(client, verdict, label, comment=""):
    return client.post(
        reverse("cases:series_review", args=[verdict.pk]),
        {f"v{verdict.pk}-label": label, f"v{verdict.pk}-comment": comment},
    )


def test_a_clinician_confirms_a_series_on_the_page_audited(owner_client, owner, case):
    verdict, _ = series_with_verdict(case)
    response = page_post(owner_client, verdict, "glioma", "agree")
    assert response.status_code == 302 and response["Location"].endswith(f"#series-{verdict.series_id}")

    review = SeriesReview.objects.get()
    assert (review.verdict, review.reviewer) == (verdict, owner)
    assert (review.decision, review.label) == ("confirmed", "glioma")
    event = AuditEvent.objects.get(verb=AuditEvent.Verb.REVIEW)
    assert (event.object_type, event.object_id) == ("inference.seriesverdict", str(verdict.pk))
    expected = {"decision": "confirmed", "label": "glioma", "case": case.pk, "series": verdict.series_id}
    assert event.detail == expected
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "Series confirmed: <strong>glioma</strong> by owner" in page


def test_a_correction_amends_the_reviewers_earlier_one(owner_client, case):
    verdict, _ = series_with_verdict(case)
    page_post(owner_client, verdict, "glioma")
    page_post(owner_client, verdict, "meningioma", "on second look")

    first, second = SeriesReview.objects.order_by("id")
    assert second.decision == "corrected" and second.label == "meningioma"
    events = AuditEvent.objects.filter(verb=AuditEvent.Verb.REVIEW).order_by("id")
    assert [e.detail.get("amends") for e in events] == [None, first.pk]


def test_a_bad_label_on_the_page_is_a_400_and_writes_nothing(owner_client, case):
    verdict, _ = series_with_verdict(case)
    response = page_post(owner_client, verdict, "banana")
    assert response.status_code == 400 and b"choose one of the model's labels" in response.content
    assert not SeriesReview.objects.exists()
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.REVIEW).exists()


def test_outsiders_get_404_on_page_and_api(client_for, api_for, outsider, case):
    verdict, _ = series_with_verdict(case)
    outsider_client = client_for(outsider)
    assert page_post(outsider_client, verdict, "glioma").status_code == 404
    api = api_for("outsider")
    assert api.post(f"/api/v1/series/{verdict.series_id}/review/", {"label": "glioma"}).status_code == 404
    assert not SeriesReview.objects.exists()


def test_a_closed_case_refuses_the_review_audited(owner_client, owner_api, case):
    verdict, _ = series_with_verdict(case)
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED)
    response = page_post(owner_client, verdict, "glioma")
    assert response.status_code == 302
    answer = owner_api.post(f"/api/v1/series/{verdict.series_id}/review/", {"label": "glioma"}, format="json")
    assert answer.status_code == 409 and answer.json()["code"] == "case_closed"
    assert not SeriesReview.objects.exists()
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.REFUSED).count() == 2


def test_a_verdict_without_a_series_rule_cannot_be_reviewed(owner_client, owner_api, case):
    verdict, _ = series_with_verdict(case, has_rule=False)
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "No series verdict: model" in page and f"v{verdict.pk}-label" not in page
    answer = owner_api.post(f"/api/v1/series/{verdict.series_id}/review/", {"label": "glioma"}, format="json")
    assert answer.status_code == 409 and "no verdict to review" in answer.json()["detail"]
    assert not SeriesReview.objects.exists()


def test_the_api_reviews_a_series_and_lists_it_with_the_verdict(owner_api, owner, case):
    verdict, scans = series_with_verdict(case)
    body = {"label": "pituitary", "comment": "sellar"}
    answer = owner_api.post(f"/api/v1/series/{verdict.series_id}/review/", body, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["decision"] == "corrected" and answer.json()["reviewer"] == "owner"

    (study,) = owner_api.get(f"/api/v1/cases/{case.pk}/series/").json()
    (listed,) = study["series"]
    shown = listed["verdict"]
    assert shown["tumour_suspected"] is True and shown["label"] == "glioma"
    assert shown["headline"] == "Tumour suspected: highest slice probability 0.9800 at or above 0.0693"
    assert [item["scan"] for item in shown["most_suspicious"]] == [s.pk for s in scans]
    assert [r["label"] for r in shown["reviews"]] == ["pituitary"]
    assert shown["report"]["state"] == "off"
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.REVIEW, object_id=str(verdict.pk)).exists()


@pytest.mark.parametrize("body", [{"label": "banana"}, {"label": 3}, {}])
def test_a_bad_label_in_the_api_is_a_400_and_writes_nothing(owner_api, case, body):
    verdict, _ = series_with_verdict(case)
    answer = owner_api.post(f"/api/v1/series/{verdict.series_id}/review/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert not SeriesReview.objects.exists()
    assert not AuditEvent.objects.filter(verb=AuditEvent.Verb.REVIEW).exists()


def test_a_series_before_its_verdict_is_a_409(owner_api, case):
    study = Study.objects.create(case=case, study_uid="2.25.1")
    series = Series.objects.create(case=case, study=study, series_uid="2.25.9")
    answer = owner_api.post(f"/api/v1/series/{series.pk}/review/", {"label": "glioma"}, format="json")
    assert answer.status_code == 409 and "no verdict to review yet" in answer.json()["detail"]


def test_a_series_review_answers_for_each_of_its_slices_in_the_case_verdict(owner_client, teammate, case):
    verdict, scans = series_with_verdict(case)
    ReviewFactory(prediction=scans[0].predictions.get(), reviewer=teammate, label="meningioma")
    summary = worklist.annotate(Case.objects.filter(pk=case.pk)).get()
    assert worklist.review_state(summary) == worklist.ReviewState.SOME

    page_post(owner_client, verdict, "notumor")
    summary = worklist.annotate(Case.objects.filter(pk=case.pk)).get()
    assert (summary.scans_reviewed, summary.scans_to_review) == (3, 3)
    # The series review is later than the slice review: it answers for that slice too.
    assert str(worklist.verdicts([case.pk])[case.pk]) == "Reviewed: no tumour"
    ReviewFactory(prediction=scans[1].predictions.get(), reviewer=teammate, label="pituitary")
    assert str(worklist.verdicts([case.pk])[case.pk]) == "Reviewed: tumour (pituitary)"
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert "Reviewed: tumour (pituitary)" in page


def test_case_page_queries_do_not_grow_with_its_series(owner_client, case, teammate):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(reverse("cases:detail", args=[case.pk])).status_code == 200
        return len(captured)

    verdict, _ = series_with_verdict(case, uid="2.25.11")
    SeriesReview.objects.create(verdict=verdict, reviewer=teammate, decision="confirmed", label="glioma")
    few = queries()
    for n in range(3):  # each series with its verdict, slices and a review
        verdict, _ = series_with_verdict(case, uid=f"2.25.2{n}")
        SeriesReview.objects.create(verdict=verdict, reviewer=teammate, decision="confirmed", label="glioma")
    assert queries() == few


@pytest.mark.parametrize("status", [Scan.Status.CHECKING, Scan.Status.QUEUED, Scan.Status.HELD])
def test_a_series_with_a_slice_still_to_answer_cannot_be_reviewed(owner_client, owner_api, case, status):
    # A later upload adds a slice to a judged series: the verdict no longer covers it, and a review
    # would answer for a slice no one (model or clinician) has read yet.
    verdict, scans = series_with_verdict(case)
    ScanFactory(case=case, series=verdict.series, series_instance=9, status=status)
    response = page_post(owner_client, verdict, "glioma")
    assert response.status_code == 302
    answer = owner_api.post(f"/api/v1/series/{verdict.series_id}/review/", {"label": "glioma"}, format="json")
    assert answer.status_code == 409 and "still being read" in answer.json()["detail"]
    assert not SeriesReview.objects.exists()
    assert AuditEvent.objects.filter(verb=AuditEvent.Verb.REFUSED).count() == 2


def test_a_series_whose_images_were_erased_cannot_be_reviewed(owner_api, steward, case):
    from cases.scans import erase_case_images

    verdict, _ = series_with_verdict(case)
    erase_case_images(case, steward)
    answer = owner_api.post(f"/api/v1/series/{verdict.series_id}/review/", {"label": "glioma"}, format="json")
    assert answer.status_code == 409 and "erased" in answer.json()["detail"]
    assert not SeriesReview.objects.exists()
