"""REST API for studies from the PACS: ask for a study by StudyInstanceUID into a case
(``POST /api/v1/cases/{id}/pull/``) or into a case of its own (``POST /api/v1/pulls/``), and follow
each pull or push (``GET /api/v1/pulls/``, ``/pulls/{id}/``). The work is in cases/pacs_import.py.
"""

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from brainscan.api import ErrorSerializer, StrictInput

from . import api_examples, pacs_import, pacs_pull
from .access import cases_visible_to, study_imports_visible_to, teams_of
from .models import CaseClosed, StudyImport, Team
from .pacs import PacsUnavailable

PULL = {
    "id": 7,
    "url": f"{api_examples.API}/pulls/7/",
    "source": "pull",
    "status": "done",
    "status_label": "Done",
    "reason": "Left out 1 series that are not MR or CT (SR).",
    "attempts": 2,
    "scan_count": 20,
    "team": 1,
    "case": api_examples.CASE_ID,
    "requested_by": "alice",
    "created_at": "2026-11-30T09:12:03.114201Z",
    "updated_at": "2026-11-30T09:12:41.870112Z",
}
PULL_EXAMPLES = [
    OpenApiExample("A pull that is done", value=PULL, status_codes=["200", "202"]),
    OpenApiExample(
        "A pull waiting for the PACS",
        value=PULL
        | {
            "status": "queued",
            "status_label": "Queued",
            "reason": "PACS unavailable (refused): could not connect to http://orthanc:8042/dicom-web to "
            "list the study's series. Trying again (attempt 1).",
            "attempts": 1,
            "scan_count": 0,
            "case": None,
        },
        status_codes=["200", "202"],
    ),
]
NOT_CONFIGURED_EXAMPLE = OpenApiExample(
    "pacs_not_configured",
    value={
        "detail": "PACS unavailable (not_configured): no PACS is configured (PACS_URL)",
        "code": "pacs_not_configured",
    },
)


@extend_schema_serializer(examples=PULL_EXAMPLES)
class StudyImportSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:studyimport-detail")
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    requested_by = serializers.CharField(source="requested_by.get_username", read_only=True)

    class Meta:
        model = StudyImport
        fields = [
            "id",
            "url",
            "source",
            "status",
            "status_label",
            "reason",
            "attempts",
            "scan_count",
            "team",
            "case",
            "requested_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A study by its UID",
            value={"study_uid": "1.2.840.113619.2.55.3.604688119.971.1"},
            request_only=True,
        )
    ]
)
class CasePullRequestSerializer(StrictInput, serializers.Serializer):
    """A pull into a given case: the study's UID only (the case names the team)."""

    study_uid = serializers.RegexField(
        pacs_import.UID_PATTERN.pattern,
        max_length=64,
        help_text="The study's StudyInstanceUID in the PACS (kept only until it is fetched).",
    )

    def validate_study_uid(self, value):
        try:
            return pacs_import.check_study_uid(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None


class PullRequestSerializer(CasePullRequestSerializer):
    """A team-level pull: the study's UID and, for a member of several teams, which team."""

    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.none(),
        required=False,
        help_text="One of your teams; may be left out when you belong to one.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["team"].queryset = teams_of(request.user)


class PacsNotConfigured(exceptions.APIException):
    # 409, not 503: no PACS is the deployment's state, not an outage that a retry would outlast.
    status_code = status.HTTP_409_CONFLICT
    default_code = "pacs_not_configured"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def _queue(request, body, *, team, case=None):
    try:
        record = pacs_pull.request_pull(
            body.validated_data["study_uid"], team=team, user=request.user, case=case
        )
    except PacsUnavailable as error:
        raise PacsNotConfigured(str(error)) from None
    except CaseClosed as refusal:
        raise Conflict(str(refusal), code=refusal.code) from None
    data = StudyImportSerializer(record, context={"request": request}).data
    return Response(data, status=status.HTTP_202_ACCEPTED)


PULL_RESPONSES = {
    202: StudyImportSerializer,
    409: OpenApiResponse(
        ErrorSerializer,
        description="No PACS is configured (`pacs_not_configured`), or the case is closed (`case_closed`).",
        examples=[NOT_CONFIGURED_EXAMPLE, api_examples.CASE_CLOSED_EXAMPLE],
    ),
}


@extend_schema_view(
    list=extend_schema(summary="Your teams' studies from the PACS (pulls and pushes), newest first"),
    retrieve=extend_schema(summary="One pull or push: its state (queued, fetching, done, failed) and why"),
)
class StudyImportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = StudyImportSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return study_imports_visible_to(self.request.user).select_related("requested_by")

    @extend_schema(
        summary="Pull a study from the PACS into a case of its own (or the case that already holds it)",
        request=PullRequestSerializer,
        responses=PULL_RESPONSES,
    )
    def create(self, request):
        body = PullRequestSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        team = body.validated_data.get("team")
        if team is None:
            teams = list(teams_of(request.user)[:2])
            if len(teams) != 1:
                raise exceptions.ValidationError({"team": ["Choose one of your teams."]})
            team = teams[0]
        return _queue(request, body, team=team)


class CasePullView(APIView):
    @extend_schema(
        summary="Pull a study from the PACS into this case",
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The case's id.")],
        request=CasePullRequestSerializer,
        responses=PULL_RESPONSES,
    )
    def post(self, request, id):  # noqa: A002 - the path's name, as the router's routes have it
        number = str(id).isascii() and str(id).isdigit()  # isdigit() alone takes "²", no number
        case = cases_visible_to(request.user).filter(pk=id if number else None).first()
        if case is None:
            raise exceptions.NotFound()
        body = CasePullRequestSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        return _queue(request, body, team=case.team, case=case)
