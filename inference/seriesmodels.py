"""A series' verdict (its slices' tumour probabilities under the model's series rule), its report
back to the PACS, and the clinicians' reviews of it. Computed by inference/series_verdict.py,
sent by inference/reportback.py."""

from django.conf import settings
from django.db import models

from ml import series as series_rules
from ml.labels import NOTUMOR

from .reviewbase import ReviewRecord


class SeriesVerdict(models.Model):
    """One model version's answer for one series, written when the series' last slice is
    classified (and again when a later upload adds slices). ``has_rule`` False: the model ships
    no series rule (``ml/series.py`` RULE_FILE), so the slices' own answers are all there is."""

    class Report(models.TextChoices):
        OFF = "", "Not reported"
        PENDING = "pending", "Sending to the PACS"
        SENT = "sent", "Sent to the PACS"
        FAILED = "failed", "Not sent to the PACS"

    series = models.ForeignKey("cases.Series", on_delete=models.CASCADE, related_name="verdicts")
    model_version = models.ForeignKey(
        "inference.ModelVersion", on_delete=models.PROTECT, related_name="series_verdicts"
    )
    has_rule = models.BooleanField(default=True)
    no_rule_reason = models.CharField(max_length=300, blank=True)
    rule = models.JSONField(default=dict, blank=True)  # ml.series.Rule.as_dict()
    tumour_suspected = models.BooleanField(null=True)
    score = models.FloatField(null=True)  # what the rule compared (ml.series.Rule.score)
    # The class reported for the series and the probability the model gives it on its most
    # suspicious slice: the most likely tumour class when suspected, else the no-finding class.
    label = models.CharField(max_length=64, blank=True)
    probability = models.FloatField(null=True)
    # [{"scan": id, "slice": number shown, "probability": p}], most suspicious first.
    most_suspicious = models.JSONField(default=list, blank=True)
    scan_ids = models.JSONField(default=list, blank=True)  # the slices judged, in slice order
    slices = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(auto_now=True)
    report_state = models.CharField(max_length=16, choices=Report.choices, blank=True)
    report_reason = models.CharField(max_length=500, blank=True)
    report_attempts = models.PositiveIntegerField(default=0)
    reported_at = models.DateTimeField(null=True, blank=True)
    report_uids = models.JSONField(default=list, blank=True)  # SOP Instance UIDs the PACS stored

    class Meta:
        ordering = ["series_id", "-computed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["series", "model_version"], name="seriesverdict_one_per_series_and_model"
            )
        ]

    def __str__(self):
        return f"{self.headline} (series {self.series_id}, {self.model_version_id})"

    @classmethod
    def current_for(cls, series_id):
        """The verdict shown, reviewed and reported: the active model's where it has one, else the
        latest computed."""
        verdicts = cls.objects.filter(series_id=series_id).select_related("model_version")
        return pick_current(verdicts)

    @property
    def parsed_rule(self):
        return series_rules.Rule.from_dict(self.rule) if self.rule else None

    @property
    def headline(self) -> str:
        """ "Tumour suspected: ..." / "No tumour suspected" / why there is no series verdict."""
        if not self.has_rule:
            return f"No series verdict: {self.no_rule_reason}"
        if self.tumour_suspected:
            return f"Tumour suspected: {self.evidence}"
        return "No tumour suspected"

    @property
    def evidence(self) -> str:
        """What the rule compared, in words: "5 consecutive slices at or above 0.94"."""
        rule = self.parsed_rule
        if rule is None or self.score is None:
            return ""
        side = "at or above" if self.tumour_suspected else "below"
        if rule.kind == series_rules.CONSECUTIVE:
            run = int(self.score)
            if self.tumour_suspected:
                return f"{run} consecutive slice{'s' if run != 1 else ''} at or above {rule.threshold:.4g}"
            return f"longest run {run} of the {rule.k} consecutive slices at or above {rule.threshold:.4g}"
        what = "highest slice probability" if rule.kind == series_rules.MAX else f"mean of the top {rule.k}"
        return f"{what} {self.score:.4f} {side} {rule.threshold:.4g}"

    @property
    def most_suspicious_shown(self) -> str:
        return ", ".join(str(item["slice"]) for item in self.most_suspicious[:3])

    @property
    def no_finding(self) -> str:
        return (self.model_version.card or {}).get("no_finding_class", NOTUMOR)

    def covered_by(self, review_scan_ids) -> bool:
        """Whether a review that covered ``review_scan_ids`` answers for this verdict as it is now:
        it saw every slice the verdict judges (one judged again over later slices is not)."""
        return set(self.scan_ids) <= set(review_scan_ids)

    def review_labels(self) -> list[str]:
        """The labels a clinician may give the series: its model version's classes, as for a slice."""
        return list(self.model_version.classes or [])

    @property
    def reviewable(self) -> bool:
        return self.has_rule and bool(self.review_labels())


class SeriesReview(ReviewRecord):
    """A clinician's decision on a series verdict, kept beside it; the verdict is never edited by it.
    It answers only for the slices the verdict judged when it was recorded (``scans``): the verdict
    row is judged again in place when later slices join the series, and no one reviewed those."""

    verdict = models.ForeignKey(SeriesVerdict, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="series_reviews"
    )
    # Relational, not a JSON list, so "is this scan reviewed through its series" is one EXISTS in
    # the worklist's and the case page's scans queries on SQLite and PostgreSQL alike.
    scans = models.ManyToManyField("cases.Scan", related_name="series_reviews", blank=True)

    def save(self, *args, **kwargs):
        """On first save, record the slices the verdict judges as stored now (read from its row: the
        form's copy may predate a recompute), which this review answers for."""
        adding = self._state.adding
        super().save(*args, **kwargs)
        if adding:
            judged = SeriesVerdict.objects.filter(pk=self.verdict_id).values_list("scan_ids", flat=True)
            covered = judged.get()
            self.scans.set(self.scans.model.objects.filter(pk__in=covered))

    def __str__(self):
        return f"{self.get_decision_display()} {self.label} by {self.reviewer} (verdict {self.verdict_id})"


def review_coverage():
    """The prefetch of which slices each of a verdict's reviews answers for (ids only), for
    mark_coverage: one query for a page of verdicts."""
    return models.Prefetch("reviews__scans", queryset=SeriesReview.scans.rel.model.objects.only("pk"))


def mark_coverage(verdict):
    """Give each of the verdict's reviews (prefetched with review_coverage) ``scan_ids``, the slices
    it answers for, and ``covers_verdict``; and the verdict ``reviewed``, when one of them covers
    every slice it judges now. Judged again over slices that joined later, it reads unreviewed
    until someone reviews it again; its earlier reviews stay, as history."""
    for review in verdict.reviews.all():
        review.scan_ids = sorted(scan.pk for scan in review.scans.all())
        review.covers_verdict = verdict.covered_by(review.scan_ids)
    verdict.reviewed = any(review.covers_verdict for review in verdict.reviews.all())
    return verdict


def pick_current(verdicts):
    """Of one series' verdicts: the active model version's, else the latest computed; None if none."""
    ranked = sorted(verdicts, key=lambda v: (v.model_version.is_active, v.computed_at, v.pk), reverse=True)
    return ranked[0] if ranked else None
