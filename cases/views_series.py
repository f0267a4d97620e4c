"""The case page's series actions: a clinician confirms or corrects a series verdict."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from .access import series_verdicts_visible_to
from .forms_series import SeriesReviewForm
from .models import Refusal


@login_required
@require_POST
def series_review_create(request, pk):
    verdict = get_object_or_404(
        series_verdicts_visible_to(request.user).select_related("model_version", "series__case"), pk=pk
    )
    back = f"{reverse('cases:detail', args=[verdict.series.case_id])}#series-{verdict.series_id}"
    form = SeriesReviewForm(request.POST, verdict=verdict, prefix=f"v{verdict.pk}")
    if not form.is_valid():
        return HttpResponseBadRequest("The series review was not saved: choose one of the model's labels.")
    try:
        review = form.save(reviewer=request.user)
    except Refusal as refusal:
        messages.error(request, f"The series review was not saved. {refusal}")
        return redirect(back)
    messages.success(request, f"Series review saved: {review.get_decision_display().lower()} {review.label}.")
    return redirect(back)
