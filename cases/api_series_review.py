"""POST /api/v1/series/{id}/review/: a clinician confirms or corrects a series' verdict, through
the page's SeriesReviewForm (the same labels, rules, audit). Outsiders get 404."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action

from brainscan.api import ErrorSerializer, StrictInput
from inference.models import SeriesVerdict
from ml.labels import CLASSES

from .access import series_visible_to
from .api import CASE_CLOSED
from .api_examples import CASE_CLOSED_EXAMPLE
from .api_review import Conflict, review_response
from .api_series import SeriesReviewSerializer, SeriesSerializer
from .forms_series import SeriesReviewForm

NO_VERDICT = "The series has no verdict to review yet: not every slice is answered."
NO_VERDICT_EXAMPLE = OpenApiExample("conflict", value={"detail": NO_VERDICT, "code": "conflict"})
CORRECTION = OpenApiExample("Correct the series to meningioma", value={"label": "meningioma", "comment": ""})


@extend_schema_serializer(examples=[CORRECTION])
class SeriesReviewRequestSerializer(StrictInput, serializers.Serializer):
    label = serializers.ChoiceField(
        choices=CLASSES,
        help_text="The series' label: one of the `classes` of its verdict's model version (listed here "
        "for the brain-tumour task).",
    )
    comment = serializers.CharField(required=False, allow_blank=True)

    def __init__(self, *args, verdict=None, **kwargs):
        super().__init__(*args, **kwargs)
        if verdict is not None:
            self.fields["label"].choices = verdict.review_labels()


class SeriesViewSet(viewsets.GenericViewSet):
    """Only the review: a case's series are read at /api/v1/cases/{id}/series/."""

    serializer_class = SeriesSerializer
    # Any id reaches the view (and its authentication): "0.5" is a 401 or 404 there, not a routing miss.
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return series_visible_to(self.request.user).select_related("case")

    @extend_schema(
        summary="Confirm or correct a series' verdict: the label answers for each of its slices",
        request=SeriesReviewRequestSerializer,
        responses={
            201: SeriesReviewSerializer,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The series has no verdict yet or none to review (`conflict`: a slice still "
                "being read, its images erased, a model "
                "without a series rule), no slice its question reads (`wrong_modality`), or its case "
                "is closed (`case_closed`, " + (CASE_CLOSED.description or "") + ").",
                examples=[NO_VERDICT_EXAMPLE, CASE_CLOSED_EXAMPLE],
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        series = self.get_object()
        verdict = SeriesVerdict.current_for(series.pk)
        if verdict is None:
            raise Conflict(NO_VERDICT)
        body = SeriesReviewRequestSerializer(data=request.data, verdict=verdict)
        body.is_valid(raise_exception=True)
        verdict.series = series
        form = SeriesReviewForm(body.validated_data, verdict=verdict)
        return review_response(form, request.user, SeriesReviewSerializer)
