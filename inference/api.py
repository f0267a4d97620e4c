"""REST API for model versions (their card metrics, which one is active per task) and the
prediction body that scans embed."""

from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import serializers, viewsets

from brainscan.api import NO_NUL
from ml.tasks import LEGACY_NAMES

from .models import ModelVersion, Prediction

MODEL_VERSION_EXAMPLE = {
    "id": 2,
    "name": "brain-tumour",
    "version": "2026.11.24",
    "task": "tumour-mri",
    "classes": ["glioma", "meningioma", "notumor", "pituitary"],
    "metrics": {"accuracy": 0.929, "macro_f1": 0.928, "tumour_recall": 0.998, "tumour_specificity": 0.673},
    "is_active": True,
    "is_available": True,
    "sha256": "c0a4f7d25e8b1f9a3d6e0b7c4a1f8e5d2b9c6a3f0e7d4b1a8c5f2e9b6d3a0c7e",
    "card_created_at": "2026-11-24T17:02:11Z",
    "registered_at": "2026-11-25T08:00:03.220914Z",
}


@extend_schema_serializer(
    examples=[OpenApiExample("The active brain-tumour model", value=MODEL_VERSION_EXAMPLE)]
)
class ModelVersionSerializer(serializers.ModelSerializer):
    metrics = serializers.DictField(read_only=True, help_text="From the model card (model.json).")
    classes = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "version",
            "task",
            "classes",
            "metrics",
            "is_active",
            "is_available",
            "sha256",
            "card_created_at",
            "registered_at",
        ]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(
        summary="Model versions, newest first per task; `is_active` marks the one that classifies uploads",
        parameters=[
            OpenApiParameter(
                "task", str, description="Only this task's versions, e.g. tumour-mri.", pattern=NO_NUL
            ),
            OpenApiParameter("active", bool, description="true: only the active version of each task."),
        ],
    ),
    retrieve=extend_schema(summary="One model version with its card metrics"),
)
class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Every signed-in user may read the registry, as on the web page; switching stays a steward's page."""

    serializer_class = ModelVersionSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        versions = ModelVersion.objects.all()
        task = self.request.query_params.get("task")
        if task:
            versions = versions.filter(task=LEGACY_NAMES.get(task, task))
        active = self.request.query_params.get("active")
        if active is not None:
            field = serializers.BooleanField()
            versions = versions.filter(is_active=field.to_internal_value(active))
        return versions


class PredictionSerializer(serializers.ModelSerializer):
    model_version = serializers.StringRelatedField(
        help_text="Model name and version, e.g. brain-tumour 2025-01-01."
    )
    model_version_id = serializers.IntegerField(read_only=True)
    probabilities = serializers.DictField(child=serializers.FloatField(), help_text="Label -> probability.")
    label = serializers.CharField(
        allow_null=True,
        help_text="The type answer: the most likely class (glioma, meningioma, pituitary or notumor); "
        "null when not classified. A separate answer from `tumour_suspected`.",
    )
    confidence = serializers.FloatField(
        help_text="Calibrated probability of the label; below the model's refer threshold the "
        "scan's outcome is `uncertain`."
    )
    tumour_probability = serializers.FloatField(
        read_only=True, allow_null=True, help_text="1 - p(notumor): the three tumour classes together."
    )
    tumour_suspected = serializers.BooleanField(
        read_only=True,
        help_text="The tumour-present answer: `tumour_probability` at or above the model's tumour "
        "threshold, set low so that few tumours are missed. It can be true while `label` is notumor; "
        "this, not the label, sets the case flag. False when the scan was not classified.",
    )
    explanation_url = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "id",
            "label",
            "confidence",
            "probabilities",
            "tumour_probability",
            "tumour_suspected",
            "model_version",
            "model_version_id",
            "latency_ms",
            "explanation_url",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_explanation_url(self, prediction):
        if not prediction.explanation:
            return None
        return self.context["request"].build_absolute_uri(
            reverse("api:scan-explanation", args=[prediction.scan_id])
        )
