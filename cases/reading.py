"""What the case page shows a reader: each scan with its review history and the reader's own
review, the case's flag line (the AI's flag and the clinicians' verdict) and the consent panel."""

from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from inference.models import SeriesVerdict
from inference.seriesmodels import mark_coverage, pick_current, review_coverage
from ml import tasks

from . import questions, studies, worklist
from .models import Case, Consent, Refusal, Scan
from .roles import is_steward


def _retractable(scan, user) -> bool:
    try:
        scan.check_retractable(user)
    except Refusal:
        return False
    return True


def _review_history(prediction, user):
    """The prediction's (or series verdict's) reviews, oldest first, each marked ``superseded_at``
    when its author amended it later (a new review by the same reviewer); the user's current
    review, if any."""
    reviews = list(prediction.reviews.all())
    latest_by = {}
    for review in reviews:
        review.superseded_at = None
        if review.reviewer_id in latest_by:
            latest_by[review.reviewer_id].superseded_at = review.created_at
        latest_by[review.reviewer_id] = review
    return reviews, latest_by.get(user.pk)


def label_options(prediction, rendered: dict):
    """The correction form's <option>s, the predicted label selected: the same for every scan of a
    model version with the same prediction, so rendered once into ``rendered`` and reused (a
    ReviewForm widget per scan cost a 50-scan page ~250 ms). ReviewForm still validates the post."""
    labels = tuple(prediction.review_labels())
    key = (labels, prediction.label)
    if key not in rendered:
        selected = mark_safe(" selected")  # noqa: S308 -- a constant
        options = ((value, selected if value == prediction.label else "", value) for value in labels)
        rendered[key] = format_html_join("", '<option value="{}"{}>{}</option>', options)
    return rendered[key]


def prepare_scan(scan, case, user, rendered_options=None):
    scan.case = case
    scan.prediction = scan.latest_prediction
    scan.retractable = _retractable(scan, user)
    scan.pixels_hidden = scan.pixels_hidden_from(user)
    scan.reviewable = (
        bool(scan.prediction) and scan.outcome != Scan.Outcome.WRONG_MODALITY and scan.erased_at is None
    )
    scan.reviewed = scan.is_reviewed
    # A scan that answered nothing: offer the question that fits, and every other one.
    scan.reaskable = (
        scan.status == Scan.Status.DONE and scan.outcome in questions.UNANSWERED and not scan.reviewed
    )
    if scan.reaskable:
        scan.fitting_task = questions.fitting_task(scan)
        scan.other_tasks = [t for t in tasks.TASKS.values() if t.name != scan.question.name]
    if scan.prediction:
        scan.reviews, scan.my_review = _review_history(scan.prediction, user)
        rendered = {} if rendered_options is None else rendered_options
        scan.label_options = label_options(scan.prediction, rendered)
    return scan


def flag_context(case):
    """The case's flag line: the AI's flag, and the clinicians' verdict once all is reviewed."""
    summary = worklist.annotate(Case.objects.filter(pk=case.pk)).get()
    state = worklist.review_state(summary)
    verdict = worklist.verdicts([case.pk]).get(case.pk) if state == worklist.ReviewState.ALL else None
    case.flag = summary.flag  # a worker may have refreshed it since the page's case was read
    return {
        "summary": summary,
        "review_state": state,
        "verdict": verdict,
        "ai_flag": worklist.ai_flag_display(case, state),
    }


def scans_context(case, user):
    scans = (
        case.scans.not_retracted()
        .with_series_reviewed()
        .select_related("series", "uploaded_by")
        .prefetch_related("predictions__model_version", "predictions__reviews__reviewer")
    )
    rendered_options = {}
    scans = [prepare_scan(scan, case, user, rendered_options) for scan in scans]
    return {
        "case": case,
        "scans": scans,
        "scan_groups": with_series_verdicts(studies.group_by_series(scans), user, rendered_options),
        "pending": any(s.is_pending for s in scans),
    } | flag_context(case)


def with_series_verdicts(groups, user, rendered_options=None):
    """``groups`` (cases.studies.group_by_series), each series given its current verdict
    (``group.verdict``, None before its last slice is answered) with its review history: two
    queries whatever the number of series."""
    series_ids = [group.series.pk for group in groups if group.series]
    found = {}
    if series_ids:
        verdicts = SeriesVerdict.objects.filter(series__in=series_ids).select_related("model_version")
        for verdict in verdicts.prefetch_related("reviews__reviewer", review_coverage()):
            found.setdefault(verdict.series_id, []).append(verdict)
    rendered = {} if rendered_options is None else rendered_options
    for group in groups:
        group.verdict = pick_current(found.get(group.series.pk, [])) if group.series else None
        if group.verdict is None:
            continue
        verdict = group.verdict
        verdict.reviews_shown, verdict.my_review = _review_history(verdict, user)
        mark_coverage(verdict)
        # Judged over other slices than the series has now (one retracted, or more uploaded).
        verdict.stale = set(verdict.scan_ids) != {scan.pk for scan in group.scans}
        if verdict.reviewable:
            verdict.label_options = label_options(verdict, rendered)
    return groups


def consent_context(case, user):
    """Each scope's current consent (who recorded it, when) and its history, read-only here:
    stewards record consent in Administration."""
    current = {c.scope: c for c in case.consents.select_related("recorded_by")}

    def granted(scope):
        return getattr(current.get(scope), "state", None) == Consent.State.GRANTED

    return {
        "consents": [
            {"scope": label, "consent": current.get(scope)} for scope, label in Consent.Scope.choices
        ],
        "consent_history": case.consent_events.select_related("recorded_by"),
        "analytics_consent": granted(Consent.Scope.ANALYTICS),
        "training_consent": granted(Consent.Scope.TRAINING),
        "can_record_consent": is_steward(user),
    }
