"""Analytics pages: reference datasets, model performance, field performance. Pages read only the
cache (DatasetStats, ModelVersion.card) and aggregate queries; nothing here computes over images."""

import mimetypes
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from brainscan.middleware import charts_policy
from cases.access import CLINICIAN_GROUP, STEWARD_GROUP, is_pacs_account, is_steward
from inference.models import ModelVersion
from ml import tasks

from . import charts
from .consent import stats_still_allowed
from .disclosure import AGGREGATE_PREFIXES, shown_classes, shown_files
from .models import DatasetStats, ReferenceDataset
from .performance import card_figures, field_performance


def can_see_analytics(user) -> bool:
    """Clinicians (a role or a team) and data stewards."""
    if not user.is_authenticated or not user.is_active or is_pacs_account(user):
        return False
    if is_steward(user):
        return True
    return user.groups.filter(name__in=[CLINICIAN_GROUP, STEWARD_GROUP]).exists() or user.memberships.exists()


def montages_visible(dataset, user) -> bool:
    # A montage shows individual scans: of case scans, only stewards may see them (clinicians
    # see other teams' cases only as averages); reference folders are public datasets.
    return dataset.kind == ReferenceDataset.Kind.FOLDER or is_steward(user)


def analytics_page(view):
    @charts_policy
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not can_see_analytics(request.user):
            raise PermissionDenied("Analytics are for clinicians and data stewards.")
        return view(request, *args, **kwargs)

    return wrapped


@analytics_page
@require_GET
def index(request):
    datasets = ReferenceDataset.objects.select_related("stats").order_by("name")
    task = _task(request)
    versions = ModelVersion.objects.filter(task=task.name)
    context = {"datasets": datasets, "versions": versions, "task": task, "tasks": tasks.TASKS.values()}
    return render(request, "analytics/index.html", context)


def _task(request) -> tasks.Task:
    """The clinical question a performance page shows (``?task=``; tumour-mri by default)."""
    try:
        return tasks.get(request.GET.get("task") or tasks.DEFAULT)
    except tasks.UnknownTask:
        raise Http404("No such clinical question.") from None


def _current_stats(dataset):
    """The dataset's cached statistics if they may be shown; queues a recompute when a counted
    case has lost consent since (the stale cache is then not shown at all)."""
    stats = DatasetStats.objects.filter(dataset=dataset).first()
    if stats is None or not stats.data:
        return stats, False
    if not stats_still_allowed(stats):
        if stats.status not in (DatasetStats.Status.PENDING, DatasetStats.Status.RUNNING):
            from .tasks import enqueue_stats

            enqueue_stats(dataset)
        return stats, False
    return stats, bool(stats.data)


@analytics_page
@require_GET
def dataset_detail(request, pk):
    dataset = get_object_or_404(ReferenceDataset, pk=pk)
    stats, showable = _current_stats(dataset)
    context = {
        "dataset": dataset,
        "stats": stats,
        "showable": showable,
        "empty": showable and not stats.data["image_count"],
        "montages_visible": montages_visible(dataset, request.user),
    }
    if showable and stats.data["image_count"]:
        data = stats.data
        classes = data["classes"]
        distributions = data["distributions"]

        def file_url(key):
            # The stored name changes with each recomputation or resample: a fresh URL for the browser cache.
            version = stats.files.get(key, "").rsplit("/", 1)[-1]
            return reverse("analytics:dataset_file", args=[dataset.pk, key]) + f"?v={version}"

        shown = shown_classes(dataset, data, request.user)
        pair = (request.GET.get("a"), request.GET.get("b"))
        chosen = list(pair) if list(pair) in data["pairs"] else None
        reference = "notumor" if "notumor" in classes else classes[-1] if classes else None
        default_pairs = [[label, reference] for label in classes if label != reference]
        context.update(
            {
                "data": data,
                "min_class_scans": settings.ANALYTICS_MIN_CLASS_SCANS,
                "withheld": [label for label in classes if label not in shown],
                "classes": [
                    {
                        "label": label,
                        "count": data["class_counts"][label],
                        "shown": label in shown,
                        "mean_url": file_url(f"mean-{label}.png"),
                        "std_url": file_url(f"std-{label}.png"),
                        "montage_url": file_url(f"montage-{label}.png"),
                        "montage": data["montages"].get(label, {}),
                    }
                    for label in classes
                ],
                "differences": [
                    {"a": a, "b": b, "url": file_url(f"diff-{a}-{b}.png")}
                    for a, b in ([chosen] if chosen else default_pairs)
                    if a in shown and b in shown
                ],
                "chosen": chosen,
                "figures": {
                    "labels": charts.bar(
                        "Images per class", classes, [data["class_counts"][c] for c in classes]
                    ),
                    "modes": charts.grouped_bars(
                        "Colour mode per class", classes, distributions["modes"], stacked=True
                    ),
                    "sizes": charts.bar(
                        f"Image sizes ({distributions['distinct_sizes']} distinct; most common shown)",
                        [size for size, _ in distributions["sizes"]],
                        [count for _, count in distributions["sizes"]],
                        xaxis="width × height (pixels)",
                    ),
                },
            }
        )
    return render(request, "analytics/dataset_detail.html", context)


@analytics_page
@require_GET
def dataset_file(request, pk, key):
    dataset = get_object_or_404(ReferenceDataset, pk=pk)
    stats, showable = _current_stats(dataset)
    name = stats.files.get(key) if showable else None
    if not name or not key.endswith(".png"):
        raise Http404("No such analytics image.")
    if key.startswith("montage-") and not montages_visible(dataset, request.user):
        raise Http404("No such analytics image.")
    if key.startswith(AGGREGATE_PREFIXES) and key not in shown_files(dataset, stats.data, request.user):
        raise Http404("No such analytics image.")
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("The image is being recomputed.")
    response = FileResponse(handle, content_type=mimetypes.guess_type(key)[0] or "application/octet-stream")
    response["Cache-Control"] = "private, max-age=300"
    return response


@analytics_page
@require_POST
def dataset_resample(request, pk):
    from .stats import resample_montage

    dataset = get_object_or_404(ReferenceDataset, pk=pk)
    _, showable = _current_stats(dataset)
    label = request.POST.get("label", "")
    if not showable or not montages_visible(dataset, request.user):
        raise Http404("No montage for that class.")
    if label not in dataset.stats.data.get("montages", {}):
        raise Http404("No montage for that class.")
    sample = resample_montage(dataset.pk, label)
    messages.success(request, f"New random sample of {sample['count']} {label} images.")
    return redirect(reverse("analytics:dataset", args=[dataset.pk]) + f"#montage-{label}")


@analytics_page
@require_POST
def dataset_recompute(request, pk):
    if not is_steward(request.user):
        raise PermissionDenied("Only a data steward can recompute statistics.")
    from .tasks import enqueue_stats

    dataset = get_object_or_404(ReferenceDataset, pk=pk)
    enqueue_stats(dataset)
    messages.success(request, f"Statistics of {dataset} queued for recomputation.")
    return redirect("analytics:dataset", pk=dataset.pk)


@analytics_page
@require_GET
def model_detail(request, pk):
    version = get_object_or_404(ModelVersion, pk=pk)
    performance = card_figures(version.card or {})
    field = field_performance(version)
    return render(
        request,
        "analytics/model_detail.html",
        {
            "version": version,
            "card": version.card or {},
            **performance,
            "field": field["versions"][:1],
            "field_not_consented": field["not_consented"],
        },
    )


@analytics_page
@require_GET
def field(request):
    task = _task(request)
    context = field_performance(task=task.name) | {"task": task, "tasks": tasks.TASKS.values()}
    return render(request, "analytics/field.html", context)
