"""The API's view of a case's studies and series: each with its non-identifying description, its
scans' ids in slice order and its series verdict (GET /api/v1/cases/{id}/series/, on CaseViewSet
in cases/api.py); reviewing a series verdict is cases/api_series_review.py."""

from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from inference.models import SeriesReview, SeriesVerdict
from inference.seriesmodels import mark_coverage, pick_current, review_coverage

from .api_examples import API, CASE_ID
from .models import Series, Study
from .studies import group_by_series

STUDY_EXAMPLE = {
    "id": 3,
    "study_uid": "2.25.118725496611233512718399035125049512963",
    "series": [
        {
            "id": 5,
            "series_uid": "2.25.300761948302658140954871936722345102855",
            "modality": "MR",
            "description": "FLAIR",
            "orientation": "axial",
            "slice_count": 3,
            "scans": [42, 43, 44],
            "scans_url": f"{API}/cases/{CASE_ID}/scans/",
            "verdict": {
                "id": 9,
                "model_version": "brain-tumour 2026.11.24",
                "has_rule": True,
                "tumour_suspected": True,
                "headline": "Tumour suspected: highest slice probability 0.9731 at or above 0.0693",
                "rule": {"kind": "max", "k": 1, "threshold": 0.0693},
                "score": 0.9731,
                "label": "glioma",
                "probability": 0.9412,
                "most_suspicious": [
                    {"scan": 43, "slice": 12, "probability": 0.9731},
                    {"scan": 44, "slice": 13, "probability": 0.9102},
                ],
                "slices": 3,
                "answered": 3,
                "computed_at": "2026-12-01T15:02:11Z",
                "report": {
                    "state": "sent",
                    "reason": "",
                    "attempts": 1,
                    "reported_at": "2026-12-01T15:02:14Z",
                    "sop_instance_uids": ["2.25.4015", "2.25.4016"],
                },
                "reviewed": False,
                "reviews": [],
                "review_url": f"{API}/series/5/review/",
            },
        }
    ],
}


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A corrected series label",
            value={
                "id": 4,
                "decision": "corrected",
                "label": "meningioma",
                "comment": "dural tail",
                "reviewer": "dr.okafor",
                "created_at": "2026-12-01T15:20:03Z",
                "scans": [42, 43, 44],
                "covers_verdict": True,
            },
        )
    ]
)
class SeriesReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.get_username", read_only=True)
    scans = serializers.SerializerMethodField(
        help_text="The slices this review answers for: those its verdict judged when it was recorded."
    )
    covers_verdict = serializers.SerializerMethodField(
        help_text="False once the verdict was judged again over slices that joined the series later."
    )

    class Meta:
        model = SeriesReview
        fields = ["id", "decision", "label", "comment", "reviewer", "created_at", "scans", "covers_verdict"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_scans(self, review):
        if not hasattr(review, "scan_ids"):  # a review just recorded (not read through mark_coverage)
            review.scan_ids = sorted(review.scans.values_list("pk", flat=True))
        return review.scan_ids

    @extend_schema_field(serializers.BooleanField())
    def get_covers_verdict(self, review) -> bool:
        if not hasattr(review, "covers_verdict"):
            review.covers_verdict = review.verdict.covered_by(self.get_scans(review))
        return review.covers_verdict


class SeriesVerdictSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.__str__", read_only=True)
    headline = serializers.CharField(read_only=True, help_text="The verdict as the case page says it.")
    report = serializers.SerializerMethodField(help_text="The report back to the PACS (PACS_REPORT_BACK).")
    reviewed = serializers.BooleanField(
        read_only=True, help_text="A review covers every slice the verdict judges now (mark_coverage)."
    )
    reviews = SeriesReviewSerializer(many=True, read_only=True)
    review_url = serializers.SerializerMethodField()

    class Meta:
        model = SeriesVerdict
        fields = ["id", "model_version", "has_rule", "tumour_suspected", "headline", "rule", "score"]
        fields += ["label", "probability", "most_suspicious", "slices", "answered", "computed_at"]
        fields += ["report", "reviewed", "reviews", "review_url"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_report(self, verdict) -> dict:
        return {
            "state": verdict.report_state or "off",
            "reason": verdict.report_reason,
            "attempts": verdict.report_attempts,
            "reported_at": verdict.reported_at,
            "sop_instance_uids": verdict.report_uids,
        }

    @extend_schema_field(serializers.URLField())
    def get_review_url(self, verdict):
        return self.context["request"].build_absolute_uri(f"/api/v1/series/{verdict.series_id}/review/")


class SeriesSerializer(serializers.ModelSerializer):
    slice_count = serializers.SerializerMethodField()
    scans = serializers.SerializerMethodField(help_text="Ids of the series' scans, in slice order.")
    scans_url = serializers.SerializerMethodField()
    verdict = serializers.SerializerMethodField(
        help_text="The series verdict (null until every slice is answered), with its reviews."
    )

    class Meta:
        model = Series
        fields = ["id", "series_uid", "modality", "description", "orientation", "slice_count", "scans"]
        fields += ["scans_url", "verdict"]
        read_only_fields = fields

    def _scans(self, series):
        return self.context["scans_of"].get(series.pk, [])

    @extend_schema_field(serializers.IntegerField(min_value=0))
    def get_slice_count(self, series) -> int:
        return len(self._scans(series))

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_scans(self, series):
        return [scan.pk for scan in self._scans(series)]

    @extend_schema_field(serializers.URLField())
    def get_scans_url(self, series):
        return self.context["request"].build_absolute_uri(f"/api/v1/cases/{series.case_id}/scans/")

    @extend_schema_field(SeriesVerdictSerializer(allow_null=True))
    def get_verdict(self, series):
        verdict = self.context["verdicts"].get(series.pk)
        return SeriesVerdictSerializer(verdict, context=self.context).data if verdict else None


@extend_schema_serializer(examples=[OpenApiExample("A study with a FLAIR series", value=STUDY_EXAMPLE)])
class StudySerializer(serializers.ModelSerializer):
    series = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = ["id", "study_uid", "series"]
        read_only_fields = fields

    @extend_schema_field(SeriesSerializer(many=True))
    def get_series(self, study):
        rows = [row for row in self.context["series"] if row.study_id == study.pk]
        return SeriesSerializer(rows, many=True, context=self.context).data


def studies_of(case, request):
    """The case's studies with their series, each listing its scans still in the case in slice order."""
    scans = case.scans.not_retracted().exclude(series=None).select_related("series")
    groups = [group for group in group_by_series(scans) if group.series]
    found = {}
    verdicts = SeriesVerdict.objects.filter(series__case=case).select_related("model_version")
    for verdict in verdicts.prefetch_related("reviews__reviewer", review_coverage()):
        found.setdefault(verdict.series_id, []).append(verdict)
    current = {series_id: pick_current(rows) for series_id, rows in found.items()}
    context = {
        "request": request,
        "series": [group.series for group in groups],
        "scans_of": {group.series.pk: group.scans for group in groups},
        "verdicts": {series_id: mark_coverage(verdict) for series_id, verdict in current.items()},
    }
    return StudySerializer(case.studies.all(), many=True, context=context).data
