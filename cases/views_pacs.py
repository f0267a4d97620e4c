"""The case page's "From the PACS" panel: ask for a study by StudyInstanceUID (the pull runs in
a worker, cases/pacs_pull.py); the panel (templates/cases/_pacs.html) lists the case's pulls
and pushes with their state and reason."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from .access import cases_visible_to
from .models import CaseClosed
from .pacs import PacsUnavailable
from .pacs_pull import request_pull


@login_required
@require_POST
def case_pull(request, pk):
    case = get_object_or_404(cases_visible_to(request.user), pk=pk)
    try:
        record = request_pull(request.POST.get("study_uid", ""), team=case.team, user=request.user, case=case)
    except (ValueError, PacsUnavailable, CaseClosed) as refusal:
        messages.error(request, f"Nothing was asked of the PACS: {refusal}")
    else:
        messages.success(
            request, f"Pull {record.pk} queued: the study's series arrive below once the PACS has sent them."
        )
    return redirect(reverse("cases:detail", args=[case.pk]) + "#pacs")
