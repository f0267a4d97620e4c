"""Clinician pages: case list, case page with scans and reviews, uploads, export."""

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ml import tasks

from . import export, questions, reading, worklist
from .access import cases_visible_to, predictions_visible_to, scans_visible_to, teams_of
from .forms import (
    CaseCreateForm,
    CaseUpdateForm,
    PatientLookupForm,
    PreferencesForm,
    ReviewForm,
    ScanRerunForm,
    ScanRetractForm,
    WorklistFilterForm,
)
from .models import AuditEvent, CaseClosed, Refusal, Scan, hash_patient_reference
from .pacs import pacs_configured
from .preferences import Preference
from .scans import PIXELS_HIDDEN
from .studies import group_by_series
from .uploads import FileError, UploadRefused, accepted_formats, upload_scans

logger = logging.getLogger(__name__)


def _wants_json(request):
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


@login_required
@require_GET
def case_list(request):
    form = WorklistFilterForm(request.GET or None)
    cases = worklist.annotate(cases_visible_to(request.user).select_related("team"))
    if form.is_bound:
        cases = form.filter(cases, request.user)
    page = Paginator(cases, 25).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    found = worklist.verdicts(case.pk for case in page)
    now = timezone.now()
    rows = [worklist.row(case, found.get(case.pk), now) for case in page]
    return render(
        request,
        "cases/case_list.html",
        {
            "form": form,
            "lookup_form": PatientLookupForm(),
            "page": page,
            "rows": rows,
            "rows_key": [tuple(row.values()) for row in rows],
            "order_rule": worklist.ORDER_RULE,
            "query": query.urlencode(),
            "can_create": teams_of(request.user).exists(),
        },
    )


@login_required
@require_POST
def find_patient(request):
    """Turn a typed patient reference into its keyed hash, so only the hash appears in URLs."""
    form = PatientLookupForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Type a patient reference to search for.")
        return redirect("cases:list")
    return redirect(
        f"{reverse('cases:list')}?patient={hash_patient_reference(form.cleaned_data['patient_reference'])}"
    )


@login_required
@require_http_methods(["GET", "POST"])
def case_create(request):
    teams = teams_of(request.user)
    if not teams.exists():
        messages.error(request, "You are not a member of any team yet; ask a data steward.")
        return redirect("cases:list")
    form = CaseCreateForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        case = form.save(created_by=request.user)
        messages.success(request, f"Case {case.pseudonym} created.")
        return redirect("cases:detail", pk=case.pk)
    return render(request, "cases/case_form.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_GET
def case_detail(request, pk):
    case = get_object_or_404(cases_visible_to(request.user).select_related("team", "created_by"), pk=pk)
    case.viewed_by(request.user)
    earlier = []
    if case.patient_ref_hash:
        earlier = (
            cases_visible_to(request.user).filter(patient_ref_hash=case.patient_ref_hash).exclude(pk=case.pk)
        )
    context = (
        reading.scans_context(case, request.user)
        | reading.consent_context(case, request.user)
        | {
            "update_form": CaseUpdateForm(instance=case),
            "earlier_cases": earlier,
            "accepted_formats": accepted_formats(),
            "pacs_configured": pacs_configured(),
        }
    )
    return render(request, "cases/case_detail.html", context)


@login_required
@require_GET
def case_scans_fragment(request, pk):
    """The scans panel alone, polled by the case page while scans are processed."""
    case = get_object_or_404(cases_visible_to(request.user), pk=pk)
    return render(request, "cases/_scans.html", reading.scans_context(case, request.user))


@login_required
@require_POST
def case_update(request, pk):
    case = get_object_or_404(cases_visible_to(request.user), pk=pk)
    form = CaseUpdateForm(request.POST, instance=case)
    if not form.is_valid():
        return HttpResponseBadRequest("Invalid status, clinical question or notes.")
    try:
        case.change(request.user, **form.cleaned_data)
    except Refusal as refusal:
        messages.error(request, str(refusal))
        return redirect("cases:detail", pk=case.pk)
    messages.success(request, "Case updated.")
    return redirect("cases:detail", pk=case.pk)


@login_required
@require_POST
def scan_upload(request, pk):
    case = get_object_or_404(cases_visible_to(request.user), pk=pk)
    status, retry_after = 400, None
    try:
        scans, errors = upload_scans(case, request.user, request.FILES.getlist("files"))
    except UploadRefused as refusal:
        errors = [FileError(0, "", str(refusal))]
        status, retry_after = refusal.status, refusal.retry_after
    except CaseClosed as refusal:
        if _wants_json(request):
            return JsonResponse({"errors": [{"file": 0, "name": "", "message": str(refusal)}]}, status=409)
        messages.error(request, str(refusal))
        return redirect("cases:detail", pk=case.pk)
    if errors:
        payload = [{"file": e.index, "name": e.name, "message": e.message} for e in errors]
        if _wants_json(request):
            response = JsonResponse({"errors": payload}, status=status)
        else:
            context = (
                reading.scans_context(case, request.user)
                | reading.consent_context(case, request.user)
                | {
                    "update_form": CaseUpdateForm(instance=case),
                    "upload_errors": errors,
                    "accepted_formats": accepted_formats(),
                }
            )
            response = render(request, "cases/case_detail.html", context, status=status)
        if retry_after:
            response["Retry-After"] = str(retry_after)
        return response
    if _wants_json(request):
        body = {"scans": [{"id": s.pk, "status": s.status, "hold_reason": s.hold_reason} for s in scans]}
        return JsonResponse(body, status=201)
    messages.success(
        request,
        f"{len(scans)} scan(s) uploaded: checking for burned-in text, then classification. A scan "
        "that shows text is held for a data steward.",
    )
    return redirect("cases:detail", pk=case.pk)


@login_required
@require_GET
def scan_image(request, pk):
    scan = get_object_or_404(scans_visible_to(request.user), pk=pk)
    if scan.pixels_hidden_from(request.user):
        raise Http404(PIXELS_HIDDEN)
    try:
        if scan.modality == Scan.Modality.DICOM:
            png = scan.preview_png()
            if png is None:
                raise Http404("This scan's image was erased.")
            return HttpResponse(png, content_type="image/png")
        if not scan.image:
            raise Http404("This scan's image was erased.")
        return FileResponse(scan.image.open("rb"), content_type="image/png")
    except FileNotFoundError:
        logger.error("The image file of scan %s is missing from storage", scan.pk)
        raise Http404("This scan's image is missing from storage.")


@login_required
@require_http_methods(["GET", "POST"])
def scan_retract(request, pk):
    """Ask once (what will happen, and why it is done), then take the scan out of its case."""
    scan = get_object_or_404(scans_visible_to(request.user).select_related("case", "uploaded_by"), pk=pk)
    form = ScanRetractForm(request.POST or None)
    try:
        scan.check_retractable(request.user, audit=True)
        if request.method == "POST" and form.is_valid():
            scan.retract(request.user, form.cleaned_data["reason"])
            messages.success(
                request, f"Scan {scan.pk} retracted: it left the case and its image was deleted."
            )
            return redirect("cases:detail", pk=scan.case_id)
    except Refusal as refusal:
        messages.error(request, f"The scan was not retracted. {refusal}")
        return redirect("cases:detail", pk=scan.case_id)
    if request.method == "GET":
        # The page shows the scan: reading it is reading the case.
        scan.case.viewed_by(request.user, scan=scan)
    context = {"scan": scan, "case": scan.case, "form": form, "reviewed": scan.is_reviewed}
    context["pixels_hidden"] = scan.pixels_hidden_from(request.user)
    return render(request, "cases/scan_retract.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def scan_rerun(request, pk):
    """One action on a scan that answered nothing: move its case to the question that fits
    (``move_case``), or run this scan alone under another question's model."""
    scan = get_object_or_404(scans_visible_to(request.user).select_related("case"), pk=pk)
    form = ScanRerunForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose one of the clinical questions.")
    task, label = form.cleaned_data["task"], tasks.label(form.cleaned_data["task"])
    try:
        if form.cleaned_data["move_case"]:
            questions.move_case_to(scan, request.user, task)
            messages.success(
                request, f"Case {scan.case.pseudonym} now asks {label}; its unanswered scans run again."
            )
        else:
            questions.rerun_under(scan, request.user, task)
            messages.success(request, f"Scan {scan.pk} runs again under {label}.")
    except Refusal as refusal:
        messages.error(request, str(refusal))
    return redirect("cases:detail", pk=scan.case_id)


@login_required
@require_GET
def explanation_image(request, pk):
    prediction = get_object_or_404(predictions_visible_to(request.user), pk=pk)
    if not prediction.explanation:
        raise Http404("No explanation image for this prediction.")
    return FileResponse(prediction.explanation.open("rb"), content_type="image/png")


def _review_answer(request, prediction, message, status=200, scan=None):
    """JSON for the page's script (the scan and flag line re-rendered, so the reader stays where
    they are), else a message and a redirect back to the scan."""
    case = prediction.scan.case
    if not _wants_json(request):
        (messages.success if status == 200 else messages.error)(request, message)
        return redirect(f"{reverse('cases:detail', args=[case.pk])}#scan-{prediction.scan_id}")
    payload = {"message": message, "scan": prediction.scan_id}
    if scan is not None:
        # The scans fragment holding this one scan: the script takes the scan and the flag line.
        context = {
            "case": case,
            "scans": [scan],
            "scan_groups": group_by_series([scan]),
            "pending": scan.is_pending,
        }
        context |= reading.flag_context(case)
        payload["scans_html"] = render_to_string("cases/_scans.html", context, request=request)
    return JsonResponse(payload, status=status)


@login_required
@require_POST
def review_create(request, pk):
    prediction = get_object_or_404(
        predictions_visible_to(request.user).select_related("model_version", "scan__case"), pk=pk
    )
    form = ReviewForm(request.POST, prediction=prediction, prefix=f"p{prediction.pk}")
    if not form.is_valid():
        return _review_answer(
            request, prediction, "The review was not saved: choose one of the model's labels.", 400
        )
    try:
        review = form.save(reviewer=request.user)
    except Refusal as refusal:
        return _review_answer(request, prediction, f"The review was not saved. {refusal}", 409)
    message = f"Review saved: {review.get_decision_display().lower()} {review.label}."
    scan = None
    if _wants_json(request):
        scans = Scan.objects.filter(pk=prediction.scan_id).prefetch_related(
            "predictions__model_version", "predictions__reviews__reviewer"
        )
        scan = reading.prepare_scan(scans.get(), prediction.scan.case, request.user)
    return _review_answer(request, prediction, message, scan=scan)


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request):
    """The user's own display preferences. Not audited: the audit trail covers what changes access
    (roles, groups, active flag, password), and a display time zone changes none."""
    current = Preference.objects.filter(user=request.user).first() or Preference(user=request.user)
    form = PreferencesForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        form.save()
        zone = form.instance.time_zone or settings.TIME_ZONE
        messages.success(request, f"Preferences saved: times are shown in {zone}.")
        return redirect("cases:preferences")
    return render(request, "cases/preferences.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_GET
def export_csv(request):
    form = WorklistFilterForm(request.GET or None)
    cases = worklist.annotate(cases_visible_to(request.user))
    if form.is_bound:
        if not form.is_valid():
            return HttpResponseBadRequest(
                "Invalid filter: "
                + "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
            )
        cases = form.filter(cases, request.user)
    filters = {k: v for k, v in request.GET.items() if v}
    AuditEvent.record(request.user, AuditEvent.Verb.EXPORT, filters=filters)
    return export.csv_response(export.case_rows(cases), export.export_filename())
