"""The API's view of a case's studies and series: each with its non-identifying description and
its scans' ids in slice order (GET /api/v1/cases/{id}/series/, on CaseViewSet in cases/api.py)."""

from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

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
        }
    ],
}


class SeriesSerializer(serializers.ModelSerializer):
    slice_count = serializers.SerializerMethodField()
    scans = serializers.SerializerMethodField(help_text="Ids of the series' scans, in slice order.")
    scans_url = serializers.SerializerMethodField()

    class Meta:
        model = Series
        fields = ["id", "series_uid", "modality", "description", "orientation", "slice_count", "scans"]
        fields += ["scans_url"]
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
    context = {
        "request": request,
        "series": [group.series for group in groups],
        "scans_of": {group.series.pk: group.scans for group in groups},
    }
    return StudySerializer(case.studies.all(), many=True, context=context).data
