"""The review of a series verdict: one form for the case page and the API, as ReviewForm is for a
slice (the model version's labels, the case's rules checked under its row lock, audited)."""

from django import forms
from django.db import transaction

from inference.models import SeriesReview

from .models import AuditEvent, NotReviewable, Refusal, Scan


class SeriesReviewForm(forms.ModelForm):
    class Meta:
        model = SeriesReview
        fields = ["label", "comment"]
        widgets = {"comment": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, verdict, **kwargs):
        super().__init__(*args, **kwargs)
        self.verdict = verdict
        self.fields["label"] = forms.ChoiceField(
            choices=[(c, c) for c in verdict.review_labels()], initial=verdict.label, label="Label"
        )

    def save(self, reviewer):
        """Record the review, or raise a Refusal, audited, and record nothing."""
        review = super().save(commit=False)
        verdict = self.verdict
        review.verdict = verdict
        review.reviewer = reviewer
        confirmed = review.label == verdict.label
        review.decision = SeriesReview.Decision.CONFIRMED if confirmed else SeriesReview.Decision.CORRECTED
        series = verdict.series
        audit = {"case": series.case_id, "series": series.pk}
        with AuditEvent.refusals(reviewer, verdict, "review", **audit), transaction.atomic():
            # A teammate closing the case or retracting its slices meanwhile locks the case row too.
            series.case.lock()
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
            # A reviewer's new review supersedes their earlier one (which stays, as history).
            amended = (
                SeriesReview.objects.filter(verdict=verdict, reviewer=reviewer)
                .order_by("-created_at", "-id")
                .values_list("pk", flat=True)
                .first()
            )
            review.save()
            AuditEvent.record(
                reviewer,
                AuditEvent.Verb.REVIEW,
                verdict,
                decision=review.decision,
                label=review.label,
                **audit,
                **({"amends": amended} if amended else {}),
            )
        return review
