"""Clinician pages: case list, case page with scans and reviews, uploads, export."""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import export
from .access import cases_visible_to, predictions_visible_to, scans_visible_to, teams_of
from .forms import (
    CaseCreateForm,
    CaseFilterForm,
    CaseUpdateForm,
    PatientLookupForm,
    ReviewForm,
    ScanRetractForm,
)
from .models import AuditEvent, CaseClosed, Refusal, Scan, hash_patient_reference
from .uploads import FileError, UploadRefused, accepted_formats, store_scans, validate_files

logger = logging.getLogger(__name__)


def _wants_json(request):
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


@login_required
@require_GET
def case_list(request):
    form = CaseFilterForm(request.GET or None)
    cases = cases_visible_to(request.user).select_related("team")
    if form.is_bound:
        cases = form.filter(cases)
    page = Paginator(cases, 25).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    # Everything a row shows: the template caches the rows' HTML under it, so it is never stale.
    rows = [(c.pk, c.pseudonym, c.team.name, c.status, c.flag, c.created_at) for c in page]
    return render(
        request,
        "cases/case_list.html",
        {
            "form": form,
            "lookup_form": PatientLookupForm(),
            "page": page,
            "rows": rows,
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
        case = form.save(commit=False)
        case.created_by = request.user
        case.save()
        AuditEvent.record(request.user, AuditEvent.Verb.CASE_CREATE, case)
        messages.success(request, f"Case {case.pseudonym} created.")
        return redirect("cases:detail", pk=case.pk)
    return render(request, "cases/case_form.html", {"form": form}, status=400 if form.errors else 200)


def _retractable(scan, user) -> bool:
    try:
        scan.check_retractable(user)
    except Refusal:
        return False
    return True


def _scans_context(case, user):
    scans = case.scans.not_retracted().prefetch_related(
        "predictions__model_version", "predictions__reviews__reviewer"
    )
    scans = list(scans)
    for scan in scans:
        scan.case = case
        scan.prediction = scan.latest_prediction
        scan.retractable = _retractable(scan, user)
        if scan.prediction:
            scan.review_form = ReviewForm(prediction=scan.prediction, prefix=f"p{scan.prediction.pk}")
    return {"case": case, "scans": scans, "pending": any(s.is_pending for s in scans)}


@login_required
@require_GET
def case_detail(request, pk):
    case = get_object_or_404(cases_visible_to(request.user).select_related("team", "created_by"), pk=pk)
    AuditEvent.record(request.user, AuditEvent.Verb.CASE_VIEW, case)
    earlier = []
    if case.patient_ref_hash:
        earlier = (
            cases_visible_to(request.user).filter(patient_ref_hash=case.patient_ref_hash).exclude(pk=case.pk)
        )
    context = _scans_context(case, request.user) | {
        "update_form": CaseUpdateForm(instance=case),
        "earlier_cases": earlier,
        "accepted_formats": accepted_formats(),
    }
    return render(request, "cases/case_detail.html", context)


@login_required
@require_GET
def case_scans_fragment(request, pk):
    """The scans panel alone, polled by the case page while scans are processed."""
    case = get_object_or_404(cases_visible_to(request.user), pk=pk)
    return render(request, "cases/_scans.html", _scans_context(case, request.user))


@login_required
@require_POST
def case_update(request, pk):
    case = get_object_or_404(cases_visible_to(request.user), pk=pk)
    form = CaseUpdateForm(request.POST, instance=case)
    if not form.is_valid():
        return HttpResponseBadRequest("Invalid status or notes.")
    try:
        case.change(request.user, **form.cleaned_data)
    except CaseClosed as refusal:
        AuditEvent.record_refusal(request.user, case, "case_update", refusal)
        messages.error(request, str(refusal))
        return redirect("cases:detail", pk=case.pk)
    messages.success(request, "Case updated.")
    return redirect("cases:detail", pk=case.pk)


@login_required
@require_POST
def scan_upload(request, pk):
    case = get_object_or_404(cases_visible_to(request.user), pk=pk)
    status, retry_after, why = 400, None, {}
    try:
        case.check_open("upload scans")  # before decoding anything
        try:
            images, errors = validate_files(request.FILES.getlist("files"))
        except UploadRefused as refusal:
            images, errors = [], [FileError(0, "", str(refusal))]
            status, retry_after, why = refusal.status, refusal.retry_after, {"reason": refusal.code}
        if errors:
            detail = why or {"files": len(errors)}
            AuditEvent.record(request.user, AuditEvent.Verb.UPLOAD_REJECTED, case, **detail)
            payload = [{"file": e.index, "name": e.name, "message": e.message} for e in errors]
            if _wants_json(request):
                response = JsonResponse({"errors": payload}, status=status)
            else:
                context = _scans_context(case, request.user) | {
                    "update_form": CaseUpdateForm(instance=case),
                    "upload_errors": errors,
                    "accepted_formats": accepted_formats(),
                }
                response = render(request, "cases/case_detail.html", context, status=status)
            if retry_after:
                response["Retry-After"] = str(retry_after)
            return response
        scans = store_scans(case, request.user, images)
    except CaseClosed as refusal:
        AuditEvent.record(request.user, AuditEvent.Verb.UPLOAD_REJECTED, case, reason=refusal.code)
        if _wants_json(request):
            return JsonResponse({"errors": [{"file": 0, "name": "", "message": str(refusal)}]}, status=409)
        messages.error(request, str(refusal))
        return redirect("cases:detail", pk=case.pk)
    if _wants_json(request):
        body = {"scans": [{"id": s.pk, "status": s.status, "hold_reason": s.hold_reason} for s in scans]}
        return JsonResponse(body, status=201)
    held = [s for s in scans if s.status == Scan.Status.HELD]
    if held:
        messages.warning(
            request,
            f"{len(scans)} scan(s) uploaded; {len(held)} held for a data steward's check before "
            f"classification ({'; '.join(sorted({s.hold_reason for s in held}))}).",
        )
    else:
        messages.success(request, f"{len(scans)} scan(s) uploaded and queued for classification.")
    return redirect("cases:detail", pk=case.pk)


@login_required
@require_GET
def scan_image(request, pk):
    scan = get_object_or_404(scans_visible_to(request.user), pk=pk)
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
        scan.check_retractable(request.user)
        if request.method == "POST" and form.is_valid():
            scan.retract(request.user, form.cleaned_data["reason"])
            messages.success(
                request, f"Scan {scan.pk} retracted: it left the case and its image was deleted."
            )
            return redirect("cases:detail", pk=scan.case_id)
    except Refusal as refusal:
        AuditEvent.record_refusal(request.user, scan, "scan_retract", refusal, case=scan.case_id)
        messages.error(request, f"The scan was not retracted. {refusal}")
        return redirect("cases:detail", pk=scan.case_id)
    if request.method == "GET":
        # The page shows the scan: reading it is reading the case.
        AuditEvent.record(request.user, AuditEvent.Verb.CASE_VIEW, scan.case, scan=scan.pk)
    context = {"scan": scan, "case": scan.case, "form": form, "reviewed": scan.is_reviewed}
    return render(request, "cases/scan_retract.html", context, status=400 if form.errors else 200)


@login_required
@require_GET
def explanation_image(request, pk):
    prediction = get_object_or_404(predictions_visible_to(request.user), pk=pk)
    if not prediction.explanation:
        raise Http404("No explanation image for this prediction.")
    return FileResponse(prediction.explanation.open("rb"), content_type="image/png")


@login_required
@require_POST
def review_create(request, pk):
    prediction = get_object_or_404(
        predictions_visible_to(request.user).select_related("model_version", "scan__case"), pk=pk
    )
    form = ReviewForm(request.POST, prediction=prediction, prefix=f"p{prediction.pk}")
    if not form.is_valid():
        messages.error(request, "The review was not saved: choose one of the model's labels.")
        return redirect("cases:detail", pk=prediction.scan.case_id)
    try:
        review = form.save(reviewer=request.user)
    except Refusal as refusal:
        AuditEvent.record_refusal(
            request.user, prediction.scan, "review", refusal, case=prediction.scan.case_id
        )
        messages.error(request, f"The review was not saved. {refusal}")
        return redirect("cases:detail", pk=prediction.scan.case_id)
    messages.success(request, f"Review saved: {review.get_decision_display().lower()} {review.label}.")
    return redirect("cases:detail", pk=prediction.scan.case_id)


@login_required
@require_GET
def export_csv(request):
    form = CaseFilterForm(request.GET or None)
    cases = cases_visible_to(request.user)
    if form.is_bound:
        if not form.is_valid():
            return HttpResponseBadRequest(
                "Invalid filter: "
                + "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
            )
        cases = form.filter(cases)
    filters = {k: v for k, v in request.GET.items() if v}
    AuditEvent.record(request.user, AuditEvent.Verb.EXPORT, filters=filters)
    filename = export.export_filename()
    response = StreamingHttpResponse(export.csv_rows(cases), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
