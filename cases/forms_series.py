"""The review of a series verdict: one form for the case page and the API, as ReviewForm is for a
slice (the model version's labels, the case's rules checked under its row lock, audited)."""

from inference.models import SeriesReview

from .forms import BaseReviewForm
from .models import NotReviewable, Refusal, Scan


class SeriesReviewForm(BaseReviewForm):
    subject_field = "verdict"

    class Meta(BaseReviewForm.Meta):
        model = SeriesReview

    def __init__(self, *args, verdict, **kwargs):
        super().__init__(*args, subject=verdict, **kwargs)
        self.verdict = verdict

    @property
    def case(self):
        return self.verdict.series.case

    def refusal_target(self):
        return self.verdict

    def audit_fields(self):
        series = self.verdict.series
        return {"case": series.case_id, "series": series.pk}

    def check_reviewable(self):
        verdict = self.verdict
        series = verdict.series
        series.case.check_open("review its series")
        if not verdict.has_rule:
            raise Refusal(f"Series {series.pk} has no verdict to review: {verdict.no_rule_reason}.")
        if series.slices().filter(status__in=Scan.UNANSWERED).exists():
            # A later upload added slices the verdict does not cover yet: it is judged again
            # once they are answered, and a review now would answer for unread slices.
            raise Refusal(
                f"Series {series.pk} has slices still being read (checked for text, classified "
                "or held for a steward): review it once its verdict covers them."
            )
        if not series.slices().filter(erased_at=None).exists():
            raise Refusal(f"Series {series.pk}'s images were erased: there is nothing left to review.")
        if not series.slices().exclude(outcome=Scan.Outcome.WRONG_MODALITY).exists():
            raise NotReviewable(f"Series {series.pk} has no slice left that its question reads.")
