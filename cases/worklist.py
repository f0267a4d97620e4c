"""The clinicians' worklist: each case's scan and review counts in one query, the reading order,
and the clinicians' verdict once every scan with a prediction is reviewed."""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Case as Choose
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils.timesince import timesince
from django.utils.timezone import localtime

from ml import tasks
from ml.labels import NOTUMOR

from .models import Case, Scan, predictions, reviews
from .studies import series_reviews

ORDER_RULE = (
    "Unreviewed cases with a suspected tumour first, then unreviewed uncertain ones, then the rest; "
    "oldest first within each group (since the case was opened or last received a scan)."
)


MINUTE = timedelta(minutes=1)


class ReviewState:
    ALL = "all"
    SOME = "some"
    NONE = "none"
    NOTHING = ""  # no scan with a prediction to review yet


def _count(scans):
    counted = scans.order_by().values("case").annotate(n=Count("pk")).values("n")[:1]
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def annotate(cases):
    """``cases`` with scans, scans_done, scans_to_review, scans_reviewed, last_activity and
    priority (0: unreviewed and tumour suspected, 1: unreviewed and uncertain, 2: the rest), in
    reading order. Correlated subqueries, so one query whatever the number of cases."""
    scans = Scan.objects.filter(case=OuterRef("pk"), retracted_at=None)
    # A scan to review: it has a prediction and the gate read it as a brain MRI (Scan.check_reviewable).
    to_review = scans.filter(Exists(predictions().filter(scan=OuterRef("pk")))).exclude(
        outcome=Scan.Outcome.WRONG_MODALITY
    )
    # Reviewed: the scan itself, or through its series (a series review answers each slice its
    # verdict covered when it was recorded).
    reviewed = to_review.filter(
        Exists(reviews().filter(prediction__scan=OuterRef("pk")))
        | Exists(series_reviews().filter(scans=OuterRef("pk")))
    )
    last_upload = Subquery(scans.order_by("-uploaded_at").values("uploaded_at")[:1])
    unreviewed = Q(scans_reviewed__lt=F("scans_to_review"))
    return (
        cases.annotate(
            scans_total=_count(scans),
            scans_done=_count(scans.filter(status=Scan.Status.DONE)),
            scans_to_review=_count(to_review),
            scans_reviewed=_count(reviewed),
            last_activity=Coalesce(last_upload, "created_at"),
        )
        .annotate(
            priority=Choose(
                When(unreviewed & Q(flag=Case.Flag.TUMOUR_SUSPECTED), then=Value(0)),
                When(unreviewed & Q(flag=Case.Flag.UNCERTAIN), then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        )
        .order_by("priority", "last_activity", "pk")
    )


def filter_unreviewed(cases):
    """Annotated cases with at least one scan awaiting its first review."""
    return cases.filter(scans_reviewed__lt=F("scans_to_review"))


def filter_mine(cases, user):
    """Cases ``user`` opened or uploaded a scan to."""
    uploaded = Scan.objects.filter(case=OuterRef("pk"), uploaded_by=user, retracted_at=None)
    return cases.filter(Q(created_by=user) | Exists(uploaded))


def review_state(case) -> str:
    if not case.scans_to_review:
        return ReviewState.NOTHING
    if case.scans_reviewed == case.scans_to_review:
        return ReviewState.ALL
    return ReviewState.SOME if case.scans_reviewed else ReviewState.NONE


@dataclass(frozen=True)
class Verdict:
    """What the clinicians' latest review of each scan says, taken together."""

    tumour_labels: tuple[str, ...]
    # Labels of questions that ask no tumour question (dementia grades), named as they are.
    graded_labels: tuple[str, ...] = ()
    asked_tumour: bool = True

    @property
    def tumour(self) -> bool:
        return bool(self.tumour_labels)

    def __str__(self):
        parts = []
        if self.tumour:
            parts.append(f"tumour ({', '.join(self.tumour_labels)})")
        elif self.asked_tumour:
            parts.append("no tumour")
        if self.graded_labels:
            parts.append(", ".join(self.graded_labels))
        return "Reviewed: " + "; ".join(parts)


SERIES_REVIEW_RULE = (
    "A series review answers for each slice its verdict covered when it was recorded (not for a "
    "slice that joined the series later): for every slice, the later of its own latest review and "
    "its series' latest review counts."
)


def verdicts(case_ids) -> dict[int, Verdict]:
    """The verdict of each case whose scans or series have reviews, from the latest review of each
    scan (an amendment supersedes its author's earlier review; field performance reads the latest
    too) and of each series (SERIES_REVIEW_RULE). A label counts as a tumour when it is one of its
    model's question's tumour classes (ml.tasks); a question without any (dementia staging) is
    named by its labels. Callers show it only once every scan to review is reviewed
    (review_state ALL). One query."""
    case_ids = list(case_ids)
    # One query: the slice reviews and the series reviews as rows of one shape (for a series
    # review, one row per slice it answers for; ``series_row`` last).
    slice_rows = (
        reviews()
        .filter(prediction__scan__case__in=case_ids, prediction__scan__retracted_at=None)
        .exclude(prediction__scan__outcome=Scan.Outcome.WRONG_MODALITY)
        .annotate(scan_ref=F("prediction__scan_id"), series_row=Value(False))
        .order_by()
        .values_list(
            "prediction__scan__case_id",
            "label",
            "prediction__model_version__card__no_finding_class",
            "prediction__model_version__task",
            "prediction__scan__series_id",
            "created_at",
            "id",
            "scan_ref",
            "series_row",
        )
    )
    series_rows = (
        series_reviews()
        .filter(verdict__series__case__in=case_ids)
        .annotate(scan_ref=F("scans"), series_row=Value(True))
        .order_by()
        .values_list(
            "verdict__series__case_id",
            "label",
            "verdict__model_version__card__no_finding_class",
            "verdict__model_version__task",
            "verdict__series_id",
            "created_at",
            "id",
            "scan_ref",
            "series_row",
        )
    )
    latest, series_latest, covered = {}, {}, {}
    rows = sorted(slice_rows.union(series_rows, all=True), key=lambda row: (row[5], bool(row[8]), row[6]))
    for case_id, label, no_finding, task, series_id, created_at, review_id, scan_id, series_row in rows:
        entry = (case_id, label, no_finding or NOTUMOR, task, series_id, created_at, review_id)
        if series_row:
            series_latest[series_id] = entry
            covered.setdefault(review_id, set()).add(scan_id)
        else:
            latest[scan_id] = entry
    # A slice review older than its series' latest review is answered by that one, if that one
    # covers the slice (not one that joined the series after it).
    latest = {
        scan_id: row[:4]
        for scan_id, row in latest.items()
        if row[4] not in series_latest
        or row[5] > series_latest[row[4]][5]
        or scan_id not in covered[series_latest[row[4]][6]]
    }
    latest |= {("series", series_id): row[:4] for series_id, row in series_latest.items()}
    found: dict[int, tuple[set[str], set[str], list[bool]]] = {}
    for case_id, label, no_finding, task in latest.values():
        tumours, graded, asked = found.setdefault(case_id, (set(), set(), [False]))
        question = tasks.TASKS.get(task)
        if question is not None and not question.flagged:
            graded.add(label)
            continue
        asked[0] = True
        if label != (question.no_finding if question else no_finding):
            tumours.add(label)
    return {
        case_id: Verdict(tuple(sorted(t)), tuple(sorted(g)), asked[0])
        for case_id, (t, g, asked) in found.items()
    }


def _age(since, now) -> str:
    """The largest unit only ("3 hours", not "3 hours, 12 minutes"): the list is read at a glance."""
    return timesince(since, now).split(",")[0] if now - since >= MINUTE else "just now"


def ai_flag_display(case, state) -> str:
    """The AI's flag as shown: "Tumour suspected – review" asks for a review, so once every scan
    is reviewed it reads as the AI's opinion beside the verdict ("Tumour suspected"), not a task."""
    shown = case.get_flag_display()
    return shown.split(" – ")[0] if state == ReviewState.ALL and case.flag != case.Flag.NONE else shown


def row(case, verdict, now) -> dict:
    """Everything a worklist row shows: the template caches the rows' HTML under these values."""
    state = review_state(case)
    since = "last upload" if case.last_activity != case.created_at else "opened"
    return {
        "pk": case.pk,
        "pseudonym": case.pseudonym,
        "team": case.team.name,
        "status": case.get_status_display(),
        "task": case.task,
        "task_label": case.get_task_display(),
        "flag": case.flag,
        "flag_display": ai_flag_display(case, state),
        "scans": f"{case.scans_done}/{case.scans_total}",
        "review_state": state,
        "reviewed": f"{case.scans_reviewed}/{case.scans_to_review}",
        "verdict": str(verdict) if verdict and state == ReviewState.ALL else "",
        "verdict_tumour": bool(verdict and verdict.tumour),
        "age": _age(case.last_activity, now),
        "since": since,
        "last_activity": localtime(case.last_activity).strftime("%Y-%m-%d %H:%M %Z"),
        "priority": case.priority,
    }
