"""REST API for cases, scan uploads, scan results and reviews (the CSV export: api_export.py).

Same rules as the pages in views.py: objects come through the access helpers (outsiders get
404), uploads go through uploads.py, filters through CaseFilterForm, and every case access is
audited as the matching page does.
"""

import logging

from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from brainscan.api import NO_NUL, ErrorSerializer, ScopedThrottle
from ml import tasks

from . import api_examples, questions
from .access import cases_visible_to, scans_visible_to
from .api_review import Conflict, review_response
from .api_series import StudySerializer, studies_of
from .forms import CaseFilterForm, ReviewForm
from .models import Case, CaseClosed, NotAllowed, Refusal, Scan
from .scans import PIXELS_HELD, PIXELS_HIDDEN
from .serializers import (
    CaseSerializer,
    CaseUpdateSerializer,
    RerunRequestSerializer,
    RetractionSerializer,
    RetractRequestSerializer,
    ReviewRequestSerializer,
    ReviewSerializer,
    ScanSerializer,
    UploadResponseSerializer,
)
from .uploads import UploadRefused, upload_scans

logger = logging.getLogger(__name__)

FILTER_PARAMETERS = [
    OpenApiParameter("q", str, description="Part of the pseudonym.", pattern=NO_NUL),
    OpenApiParameter(
        "patient",
        str,
        description="Keyed hash of a patient reference (a case's `patient_ref_hash`).",
        pattern=r"^[0-9a-f]{64}$",
    ),
    OpenApiParameter("status", str, enum=Case.Status.values),
    OpenApiParameter("flag", str, enum=Case.Flag.values),
    OpenApiParameter("task", str, enum=list(tasks.TASKS), description="The clinical question."),
    OpenApiParameter("created_from", OpenApiTypes.DATE, description="Created on or after (YYYY-MM-DD)."),
    OpenApiParameter("created_to", OpenApiTypes.DATE, description="Created on or before (YYYY-MM-DD)."),
]


def filtered_cases(request):
    """The caller's cases narrowed by the web list's filters; invalid filters are a 400."""
    cases = cases_visible_to(request.user)
    form = CaseFilterForm(request.query_params)
    if not form.is_valid():
        raise exceptions.ValidationError({field: list(messages) for field, messages in form.errors.items()})
    # The web form reads "" as "any"; an API client leaves the parameter out instead.
    empty = [name for name in form.fields if name != "q" and request.query_params.get(name) == ""]
    if empty:
        raise exceptions.ValidationError(
            {name: ["Give a value or leave the parameter out."] for name in empty}
        )
    # A form reads only the last of repeated values: say so rather than filter on part of them.
    repeated = [name for name in form.fields if len(request.query_params.getlist(name)) > 1]
    if repeated:
        raise exceptions.ValidationError({name: ["Give this parameter once."] for name in repeated})
    return form.filter(cases)


UPLOAD_REQUEST = {
    "multipart/form-data": {
        "type": "object",
        "properties": {
            "files": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "One or several JPEG/PNG images or DICOM files (a series, multi-frame MR/CT "
                "objects), or .zip archives of a DICOM series or study (the content decides, not the name).",
            }
        },
        "required": ["files"],
    }
}


CASE_CLOSED = OpenApiResponse(
    ErrorSerializer,
    description="The case is closed (`case_closed`): read-only until its status is set back to open.",
    examples=[api_examples.CASE_CLOSED_EXAMPLE],
)


@extend_schema_view(
    list=extend_schema(summary="Your teams' cases, newest first", parameters=FILTER_PARAMETERS),
    create=extend_schema(summary="Open a case in one of your teams"),
    retrieve=extend_schema(summary="One case (audited as a case view)"),
    partial_update=extend_schema(
        summary="Change a case's status, clinical question (`task`, while no scan is reviewed) or notes",
        request=CaseUpdateSerializer,
        responses={200: CaseSerializer, 409: CASE_CLOSED},
    ),
    update=extend_schema(
        summary="Set a case's status, clinical question and notes",
        request=CaseUpdateSerializer,
        responses={200: CaseSerializer, 409: CASE_CLOSED},
    ),
)
class CaseViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = CaseSerializer
    throttle_classes = [ScopedThrottle]
    # Any id reaches the view, so a caller without credentials always hears 401, never a route 404.
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        cases = cases_visible_to(self.request.user).select_related("team", "created_by")
        if self.action == "list":
            cases = filtered_cases(self.request).select_related("team", "created_by")
        return cases

    @property
    def throttle_scope(self):
        return "api-upload" if self.action == "upload" else None

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    def retrieve(self, request, *args, **kwargs):
        case = self.get_object()
        case.viewed_by(request.user)
        return Response(self.get_serializer(case).data)

    def update(self, request, *args, **kwargs):
        case = self.get_object()
        changes = CaseUpdateSerializer(case, data=request.data, partial=kwargs.get("partial", False))
        changes.is_valid(raise_exception=True)
        try:
            case.change(request.user, **changes.validated_data)
        except Refusal as refusal:
            raise Conflict(str(refusal), code=refusal.code)
        return Response(self.get_serializer(case).data)

    @extend_schema(summary="The case's scans with their results", responses=ScanSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="scans", pagination_class=None)
    def scans(self, request, pk=None):
        case = self.get_object()
        # Every scan's result: reading it is reading the case.
        case.viewed_by(request.user)
        return Response(
            ScanSerializer(
                _with_results(case.scans.not_retracted()), many=True, context={"request": request}
            ).data
        )

    @extend_schema(
        summary="The case's studies and series (remapped UIDs, descriptions, scan ids in slice order)",
        responses=StudySerializer(many=True),
    )
    @action(detail=True, methods=["get"], url_path="series", pagination_class=None)
    def series(self, request, pk=None):
        case = self.get_object()
        case.viewed_by(request.user)
        return Response(studies_of(case, request))

    @extend_schema(
        summary="Upload images to classify: 202 with each new scan; any bad file stores nothing",
        request=UPLOAD_REQUEST,
        responses={
            202: UploadResponseSerializer,
            409: CASE_CLOSED,
            413: OpenApiResponse(
                ErrorSerializer,
                description="The files' headers declare more pixels together than one upload may "
                "hold (UPLOAD_MAX_TOTAL_PIXELS), more slices (UPLOAD_MAX_SLICES, `upload_too_many_slices`), "
                "or its zip archives pass a limit (UPLOAD_ZIP_MAX_MEMBERS, UPLOAD_ZIP_MAX_BYTES, "
                "UPLOAD_ZIP_MAX_RATIO: `archive_...`); nothing was decoded or stored.",
                examples=[api_examples.UPLOAD_TOO_LARGE_EXAMPLE, api_examples.ARCHIVE_TOO_LARGE_EXAMPLE],
            ),
            503: OpenApiResponse(
                ErrorSerializer,
                description="The server could not check the upload in time (UPLOAD_MAX_SECONDS); "
                "nothing was stored: retry after the `Retry-After` header's seconds.",
                examples=[api_examples.UPLOAD_TIMEOUT_EXAMPLE],
            ),
        },
    )
    @scans.mapping.post
    def upload(self, request, pk=None):
        case = self.get_object()
        try:
            scans, errors = upload_scans(case, request.user, request.FILES.getlist("files"))
        except CaseClosed as refusal:
            raise Conflict(str(refusal), code=refusal.code)
        except UploadRefused as refusal:
            headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else None
            return Response(
                {"detail": str(refusal), "code": refusal.code}, status=refusal.status, headers=headers
            )
        if errors:
            body = {
                "detail": "Nothing was stored: "
                + "; ".join(f"{e.name or 'upload'}: {e.message}" if e.index else e.message for e in errors),
                "code": "invalid_files",
                "files": [{"file": e.index, "name": e.name, "message": e.message} for e in errors],
            }
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        data = ScanSerializer(
            _with_results(Scan.objects.filter(pk__in=[s.pk for s in scans])),
            many=True,
            context={"request": request},
        ).data
        return Response({"scans": data}, status=status.HTTP_202_ACCEPTED)


def _with_results(scans):
    return scans.prefetch_related("predictions__model_version", "predictions__reviews__reviewer")


class PNGRenderer(renderers.BaseRenderer):
    media_type = "image/png"
    format = "png"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


@extend_schema_view(retrieve=extend_schema(summary="A scan: status, outcome, prediction, review, file links"))
class ScanViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ScanSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return _with_results(scans_visible_to(self.request.user).select_related("case"))

    def retrieve(self, request, *args, **kwargs):
        scan = self.get_object()
        if not scan.is_pending:
            # Reading a result is reading the case; polls while it is pending show no clinical data.
            scan.case.viewed_by(request.user, scan=scan)
        return Response(self.get_serializer(scan).data)

    @extend_schema(
        summary="Confirm or correct the label of the scan's latest prediction",
        request=ReviewRequestSerializer,
        responses={
            201: ReviewSerializer,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The scan has no prediction yet or its image was erased (`conflict`), was "
                "refused as not a slice "
                "its question reads (`wrong_modality`: such a scan cannot carry a diagnostic label), "
                "or its case is closed "
                "(`case_closed`).",
                examples=[api_examples.NO_PREDICTION_EXAMPLE],
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        scan = self.get_object()
        prediction = scan.latest_prediction
        if prediction is None:
            raise Conflict("The scan has no prediction to review yet.")
        request_body = ReviewRequestSerializer(data=request.data, prediction=prediction)
        request_body.is_valid(raise_exception=True)
        form = ReviewForm(request_body.validated_data, prediction=prediction)
        return review_response(form, request.user, ReviewSerializer)

    @extend_schema(
        summary="Retract a scan uploaded by mistake: it leaves the case and its files are deleted",
        description="Allowed to its uploader until the scan is reviewed, and to data stewards. The row "
        "keeps the content hash and who retracted it, when and why; afterwards every URL of the scan "
        "answers 404.",
        request=RetractRequestSerializer,
        responses={
            200: RetractionSerializer,
            403: OpenApiResponse(
                ErrorSerializer,
                description="Not its uploader, or reviewed and you are not a data steward "
                "(`permission_denied`).",
                examples=[api_examples.RETRACT_FORBIDDEN_EXAMPLE],
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description="The case is closed (`case_closed`), or the scan is being classified right now "
                "(`scan_processing`: retry once it is done).",
                examples=[api_examples.CASE_CLOSED_EXAMPLE, api_examples.SCAN_PROCESSING_EXAMPLE],
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def retract(self, request, pk=None):
        scan = self.get_object()
        try:
            # Who may, before what they sent: a teammate hears 403 whatever the body says.
            scan.check_retractable(request.user, audit=True)
            request_body = RetractRequestSerializer(data=request.data)
            request_body.is_valid(raise_exception=True)
            scan.retract(request.user, request_body.validated_data["reason"])
        except NotAllowed as refusal:
            raise exceptions.PermissionDenied(str(refusal), code=refusal.code)
        except Refusal as refusal:
            raise Conflict(str(refusal), code=refusal.code)
        return Response(RetractionSerializer(scan).data)

    @extend_schema(
        summary="Run a scan that answered nothing again: under another question, or move its case to it",
        request=RerunRequestSerializer,
        responses={
            202: ScanSerializer,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The scan is not done, is reviewed or retracted, its case is closed "
                "(`case_closed`), or the case's question is settled by a review (`question_settled`).",
                examples=[api_examples.QUESTION_SETTLED_EXAMPLE],
            ),
        },
        examples=api_examples.RERUN_EXAMPLES,
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        scan = self.get_object()
        body = RerunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            if body.validated_data["move_case"]:
                questions.move_case_to(scan, request.user, body.validated_data["task"])
            else:
                questions.rerun_under(scan, request.user, body.validated_data["task"])
        except Refusal as refusal:
            raise Conflict(str(refusal), code=refusal.code)
        return Response(
            ScanSerializer(scan, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(summary="The stored (de-identified) image", responses=api_examples.IMAGE_RESPONSES)
    @action(
        detail=True,
        methods=["get"],
        url_path="image",
        renderer_classes=[renderers.JSONRenderer, PNGRenderer],
    )
    def image(self, request, pk=None):
        scan = self.get_object()
        if scan.pixels_hidden_from(request.user):
            if scan.status == scan.Status.HELD:
                raise Conflict(PIXELS_HELD, code="held_for_steward")
            raise Conflict(PIXELS_HIDDEN, code="awaiting_text_check")
        # DICOM slices are rendered from their de-identified pixels; erased scans have no file.
        try:
            png = scan.preview_png()
        except FileNotFoundError:
            logger.error("The image file of scan %s is missing from storage", scan.pk)
            raise exceptions.NotFound("This scan's image is missing from storage.")
        if png is None:
            raise exceptions.NotFound("This scan's image was erased.")
        return HttpResponse(png, content_type="image/png")

    @extend_schema(
        summary="The explanation (Grad-CAM) image of the latest prediction, when there is one",
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="explanation",
        renderer_classes=[renderers.JSONRenderer, PNGRenderer],
    )
    def explanation(self, request, pk=None):
        prediction = self.get_object().latest_prediction
        if prediction is None or not prediction.explanation:
            raise exceptions.NotFound("No explanation image for this scan.")
        return FileResponse(prediction.explanation.open("rb"), content_type="image/png")
