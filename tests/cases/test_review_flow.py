"""Reviewing on the case page: confirm in one click, correct with a label and a comment, saved
by script (JSON with the re-rendered scan) or by a plain POST (redirect back to the scan);
amendments supersede their author's earlier review, which stays as history."""

import re

import pytest
from django.urls import reverse

from cases.models import AuditEvent, Case, Scan
from inference.models import Review
from tests.factories import PredictionFactory, ReviewFactory, ScanFactory

pytestmark = pytest.mark.django_db

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}


def _text(html):
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def prediction(case):
    Case.objects.filter(pk=case.pk).update(flag=Case.Flag.TUMOUR_SUSPECTED)
    return PredictionFactory(scan=_done_scan(case))


def _done_scan(case):
    return ScanFactory(case=case, status=Scan.Status.DONE, outcome=Scan.Outcome.CLASSIFIED)


def test_each_scan_offers_confirm_and_a_labelled_correction(owner_client, case, prediction):
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    article = re.search(rf'<article[^>]*id="scan-{prediction.scan_id}".*?</article>', page, re.S).group(0)
    confirm = re.search(r'<form[^>]*class="review-form confirm-form".*?</form>', article, re.S).group(0)
    assert f'name="p{prediction.pk}-label" value="glioma"' in confirm and "Confirm glioma" in confirm
    correct = re.search(r'<form[^>]*class="review-form correct-form".*?</form>', article, re.S).group(0)
    assert f'<label for="id_p{prediction.pk}-label">Correct label</label>' in correct
    assert f'<label for="id_p{prediction.pk}-comment">Comment' in correct and "(optional)" in correct
    assert "<kbd>j</kbd>" in page and "<kbd>c</kbd> confirm" in page


def test_without_script_a_review_redirects_back_to_its_scan(owner_client, case, prediction):
    response = owner_client.post(
        reverse("cases:review", args=[prediction.pk]), {f"p{prediction.pk}-label": "glioma"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('cases:detail', args=[case.pk])}#scan-{prediction.scan_id}"
    assert Review.objects.get().decision == Review.Decision.CONFIRMED


def test_by_script_the_answer_carries_the_scan_and_the_flag_line_with_the_verdict(
    owner_client, case, prediction
):
    response = owner_client.post(
        reverse("cases:review", args=[prediction.pk]),
        {f"p{prediction.pk}-label": "meningioma", f"p{prediction.pk}-comment": "dural tail"},
        **XHR,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Review saved: corrected meningioma."
    assert body["scan"] == prediction.scan_id
    # The scans fragment with this one scan: the page's script takes the scan and the flag line.
    (article,) = re.findall(r'<article class="scan status-done" id="scan-(\d+)"', body["scans_html"])
    assert article == str(prediction.scan_id)
    assert 'data-reviewed="true"' in body["scans_html"] and "dural tail" in body["scans_html"]
    flag = _text(
        re.search(r'<p class="case-flag" id="case-flag-line">.*?</p>', body["scans_html"], re.S).group(0)
    )
    assert "Reviewed: tumour (meningioma) · AI flag: Tumour suspected 1 of 1" in flag
    assert "1 of 1 scan with a prediction reviewed" in flag and "– review" not in flag


def test_a_refused_review_by_script_answers_the_reason(owner_client, case, prediction):
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED)
    response = owner_client.post(
        reverse("cases:review", args=[prediction.pk]), {f"p{prediction.pk}-label": "glioma"}, **XHR
    )
    assert response.status_code == 409 and "is closed" in response.json()["message"]
    response = owner_client.post(
        reverse("cases:review", args=[prediction.pk]), {f"p{prediction.pk}-label": "cat"}, **XHR
    )
    assert response.status_code == 400 and not Review.objects.exists()


def test_case_page_shows_the_verdict_only_once_every_scan_is_reviewed(owner_client, case, prediction):
    other = PredictionFactory(scan=_done_scan(case), label="notumor", tumour_suspected=False)
    ReviewFactory(prediction=prediction, label="glioma")
    page = _text(owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode())
    assert "Case flag: Tumour suspected – review 1 of 2 scans with a prediction reviewed" in page
    assert "Reviewed:" not in page
    ReviewFactory(prediction=other, label="notumor")
    page = _text(owner_client.get(reverse("cases:scans_fragment", args=[case.pk])).content.decode())
    assert "Reviewed: tumour (glioma) · AI flag: Tumour suspected 2 of 2" in page


def test_a_second_review_by_its_author_amends_the_first_which_stays_as_history(
    client_for, owner, teammate, case, prediction
):
    owner_client, teammate_client = client_for(owner), client_for(teammate)
    url = reverse("cases:review", args=[prediction.pk])
    teammate_client.post(url, {f"p{prediction.pk}-label": "glioma"})
    owner_client.post(url, {f"p{prediction.pk}-label": "glioma"})
    owner_client.post(
        url, {f"p{prediction.pk}-label": "pituitary", f"p{prediction.pk}-comment": "on second look"}
    )

    assert Review.objects.count() == 3  # nothing is overwritten
    first, amendment = Review.objects.filter(reviewer=owner).order_by("id")
    events = AuditEvent.objects.filter(verb=AuditEvent.Verb.REVIEW).order_by("id")
    assert [event.detail.get("amends") for event in events] == [None, None, first.pk]

    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    superseded = re.findall(r'<li class="review superseded">(.*?)</li>', page, re.S)
    assert len(superseded) == 1 and "by owner" in superseded[0] and "amended" in superseded[0]
    current = re.findall(r'<li class="review">(.*?)</li>', page, re.S)
    assert len(current) == 2 and any("by teammate" in c for c in current)  # the teammate's stands
    assert "You corrected pituitary. A new review amends yours" in _text(page)
    # The verdict follows the latest review of the scan: the owner's amendment.
    assert "Reviewed: tumour (pituitary)" in _text(page)


def test_case_page_queries_do_not_grow_with_its_scans(owner_client, case, prediction):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(reverse("cases:detail", args=[case.pk])).status_code == 200
        return len(captured)

    ReviewFactory(prediction=prediction)
    few = queries()
    for _ in range(5):  # each with its own uploader and a review: no query per scan for either
        ReviewFactory(prediction=PredictionFactory(scan=_done_scan(case)))
    assert queries() == few


def test_an_erased_scan_cannot_be_reviewed_and_is_not_offered(owner_client, steward, case, prediction):
    # A steward erased the case's images: no one can look at the scan any more, so a label on it
    # would be a diagnosis without the image.
    from cases.scans import erase_case_images

    erase_case_images(case, steward)
    page = owner_client.get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert reverse("cases:review", args=[prediction.pk]) not in page
    response = owner_client.post(
        reverse("cases:review", args=[prediction.pk]), {f"p{prediction.pk}-label": "glioma"}, **XHR
    )
    assert response.status_code == 409 and "erased" in response.json()["message"]
    assert not Review.objects.exists()
