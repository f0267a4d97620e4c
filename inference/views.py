"""Model registry page: every signed-in user sees the versions; a data steward switches the active one
(after a confirmation page)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from cases.access import is_steward
from cases.models import AuditEvent
from ml import tasks

from .models import ModelVersion


@login_required
@require_GET
def model_list(request):
    """The versions of each task, every task listed (one without a model says so)."""
    versions = list(ModelVersion.objects.all())
    groups = [(task, [v for v in versions if v.task == task.name]) for task in tasks.TASKS.values()]
    others = [v for v in versions if v.task not in tasks.TASKS]
    return render(request, "inference/model_list.html", {"groups": groups, "others": others})


@login_required
@require_http_methods(["GET", "POST"])
def model_activate(request, pk):
    """GET shows what the switch will do and asks once; the POST from that page switches."""
    if not is_steward(request.user):
        raise PermissionDenied("Only a data steward can switch the active model.")
    version = get_object_or_404(ModelVersion.objects.filter(is_available=True), pk=pk)
    previous = ModelVersion.active_for(version.task)
    if request.method == "GET":
        if version.is_active:
            messages.info(request, f"{version} is already the active model for {version.task_label}.")
            return redirect("inference:list")
        return render(request, "inference/model_activate.html", {"version": version, "previous": previous})
    requeued = version.activate(request.user)
    AuditEvent.record(
        request.user,
        AuditEvent.Verb.MODEL_SWITCH,
        version,
        task=version.task,
        previous=str(previous) if previous else "",
        active=str(version),
        requeued=len(requeued),
    )
    waiting = f" {len(requeued)} scan(s) left without a model are queued for it." if requeued else ""
    messages.success(request, f"{version} is now the active model for {version.task_label}.{waiting}")
    return redirect("inference:list")
