"""What the case page shows a reader: each scan with its review history and the reader's own
review, the case's flag line (the AI's flag and the clinicians' verdict) and the consent panel."""

from ml import tasks

from . import questions, studies, worklist
from .forms import ReviewForm
from .models import Case, Consent, Refusal, Scan
from .roles import is_steward


def _retractable(scan, user) -> bool:
    try:
        scan.check_retractable(user)
    except Refusal:
        return False
    return True


def _review_history(prediction, user):
    """The prediction's reviews, oldest first, each marked ``superseded_at`` when its author
    amended it later (a new review by the same reviewer); the user's current review, if any."""
    reviews = list(prediction.reviews.all())
    latest_by = {}
    for review in reviews:
        review.superseded_at = None
        if review.reviewer_id in latest_by:
            latest_by[review.reviewer_id].superseded_at = review.created_at
        latest_by[review.reviewer_id] = review
    return reviews, latest_by.get(user.pk)


def prepare_scan(scan, case, user):
    scan.case = case
    scan.prediction = scan.latest_prediction
    scan.retractable = _retractable(scan, user)
    scan.reviewable = bool(scan.prediction) and scan.outcome != Scan.Outcome.WRONG_MODALITY
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
        scan.review_form = ReviewForm(prediction=scan.prediction, prefix=f"p{scan.prediction.pk}")
    return scan


def flag_context(case):
    """The case's flag line: the AI's flag, and the clinicians' verdict once all is reviewed."""
    summary = worklist.annotate(Case.objects.filter(pk=case.pk)).get()
    state = worklist.review_state(summary)
    verdict = worklist.verdicts([case.pk]).get(case.pk) if state == worklist.ReviewState.ALL else None
    case.flag = summary.flag  # a worker may have refreshed it since the page's case was read
    return {"summary": summary, "review_state": state, "verdict": verdict}


def scans_context(case, user):
    scans = (
        case.scans.not_retracted()
        .select_related("series")
        .prefetch_related("predictions__model_version", "predictions__reviews__reviewer")
    )
    scans = [prepare_scan(scan, case, user) for scan in scans]
    return {
        "case": case,
        "scans": scans,
        "scan_groups": studies.group_by_series(scans),
        "pending": any(s.is_pending for s in scans),
    } | flag_context(case)


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
