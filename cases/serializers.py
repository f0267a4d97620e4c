"""The API's serializers for cases, scans, reviews and retractions (the viewsets are in cases/api.py)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from brainscan.api import StrictInput
from inference.api import PredictionSerializer
from inference.models import Review
from ml import tasks

from . import acquisition, api_examples
from .access import teams_of
from .models import Case, Scan, Team, retraction_reason


@extend_schema_serializer(examples=api_examples.REVIEW_EXAMPLES)
class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.get_username", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "decision", "label", "comment", "reviewer", "created_at"]
        read_only_fields = fields


def _review_label_choices() -> list[tuple[str, str]]:
    """Every task's classes, each shown with the questions it belongs to (the schema's enum)."""
    owners: dict[str, list[str]] = {}
    for task in tasks.TASKS.values():
        for label in task.classes:
            owners.setdefault(label, []).append(f"{task.label}, `{task.name}`")
    return [(label, f"a class of {' and '.join(names)}") for label, names in owners.items()]


@extend_schema_serializer(examples=api_examples.REVIEW_REQUEST_EXAMPLES)
class ReviewRequestSerializer(StrictInput, serializers.Serializer):
    # The schema lists every task's classes; a request is checked against the classes of the
    # prediction's own model version (Prediction.review_labels, as the page's form is).
    label = serializers.ChoiceField(
        choices=_review_label_choices(),
        help_text="The label the reviewer confirms or sets: one of the `classes` of the prediction's "
        "model version, so one of its case's (or re-run scan's) clinical question: "
        + "; ".join(
            f"{task.label} (`{task.name}`): {', '.join(task.classes)}" for task in tasks.TASKS.values()
        )
        + ". A label of another question is refused (400).",
    )
    comment = serializers.CharField(required=False, allow_blank=True)

    def __init__(self, *args, prediction=None, **kwargs):
        super().__init__(*args, **kwargs)
        if prediction is not None:
            self.fields["label"].choices = prediction.review_labels()


@extend_schema_serializer(examples=api_examples.RERUN_REQUEST_EXAMPLES)
class RerunRequestSerializer(StrictInput, serializers.Serializer):
    task = serializers.ChoiceField(
        choices=tasks.choices(), help_text="The clinical question to run it under."
    )
    move_case = serializers.BooleanField(
        default=False,
        help_text="true: move the whole case to this question (refused once a scan of it is reviewed) "
        "and run again each of its scans that answered nothing; false: run this scan alone under it.",
    )


@extend_schema_serializer(examples=api_examples.RETRACT_REQUEST_EXAMPLES)
class RetractRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500,
        trim_whitespace=False,
        validators=[retraction_reason],
        help_text="Why the scan is taken back (e.g. wrong patient); no names or other identifiers.",
    )


@extend_schema_serializer(examples=api_examples.RETRACTION_EXAMPLES)
class RetractionSerializer(serializers.ModelSerializer):
    case = serializers.PrimaryKeyRelatedField(read_only=True)
    retracted_by = serializers.CharField(source="retracted_by.get_username", read_only=True)
    reason = serializers.CharField(source="retraction_reason", read_only=True)

    class Meta:
        model = Scan
        fields = ["id", "case", "sha256", "retracted_by", "retracted_at", "reason"]
        read_only_fields = fields


# One optional string per allow-listed keyword (cases.acquisition), so the schema names every
# attribute that can appear; each is present only where the slice had it (so none is "required":
# spectacular marks a read-only field required). Output only, like the serializer that holds it.
AcquisitionAttributesSerializer = type(
    "AcquisitionAttributesSerializer",
    (serializers.Serializer,),
    {
        keyword: serializers.CharField(required=False, help_text=label)
        for keyword, label in acquisition.ALLOWED_ATTRIBUTES.items()
    },
)


class WindowSerializer(serializers.Serializer):
    center = serializers.CharField(read_only=True, help_text="WindowCenter, modality units")
    width = serializers.CharField(read_only=True, help_text="WindowWidth, modality units")
    preview_center = serializers.FloatField(read_only=True, help_text="The window on the 8-bit preview")
    preview_width = serializers.FloatField(read_only=True)


class AcquisitionSerializer(serializers.Serializer):
    """How a DICOM slice was acquired: no attribute de-identification removes (the series
    description only where the Clean Descriptors Option kept it), and the slice's own window."""

    attributes = AcquisitionAttributesSerializer(read_only=True)
    window = WindowSerializer(read_only=True, allow_null=True)

    def to_representation(self, stored):
        shown = {
            key: value
            for key, value in stored.get("attributes", {}).items()
            if key in acquisition.ALLOWED_ATTRIBUTES
            and (key not in acquisition.RETAINED_WHEN_CLEAN or acquisition.RETAINED_WHEN_CLEAN[key](value))
        }
        return {"attributes": shown, "window": stored.get("window")}


@extend_schema_serializer(examples=api_examples.SCAN_EXAMPLES)
class ScanSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:scan-detail")
    case = serializers.PrimaryKeyRelatedField(read_only=True)
    series = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="Its series in `GET cases/{id}/series/`; null for a JPEG/PNG image.",
    )
    image_url = serializers.HyperlinkedIdentityField(view_name="api:scan-image")
    explanation_url = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()
    task = serializers.ChoiceField(
        source="question.name",
        choices=tasks.choices(),
        read_only=True,
        help_text="The question the scan is run under: its case's, or the one it was re-run under.",
    )
    acquisition = serializers.SerializerMethodField()

    class Meta:
        model = Scan
        fields = [
            "id",
            "url",
            "case",
            "status",
            "hold_reason",
            "failure_reason",
            "outcome",
            "outcome_reason",
            "task",
            "modality",
            "series",
            "width",
            "height",
            "acquisition",
            "uploaded_at",
            "image_url",
            "explanation_url",
            "prediction",
            "review",
        ]
        read_only_fields = fields

    @extend_schema_field(AcquisitionSerializer(allow_null=True))
    def get_acquisition(self, scan):
        # DICOM slices only (a JPEG/PNG is re-encoded from its pixels: it has none).
        return AcquisitionSerializer(scan.acquisition).data if scan.acquisition else None

    @extend_schema_field(PredictionSerializer(allow_null=True))
    def get_prediction(self, scan):
        prediction = scan.latest_prediction
        return PredictionSerializer(prediction, context=self.context).data if prediction else None

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_explanation_url(self, scan):
        prediction = scan.latest_prediction
        if prediction is None or not prediction.explanation:
            return None
        return self.context["request"].build_absolute_uri(reverse("api:scan-explanation", args=[scan.pk]))

    @extend_schema_field(ReviewSerializer(allow_null=True))
    def get_review(self, scan):
        prediction = scan.latest_prediction
        review = prediction.latest_review if prediction else None
        return ReviewSerializer(review).data if review else None


@extend_schema_serializer(examples=api_examples.CASE_EXAMPLES)
class CaseSerializer(StrictInput, serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:case-detail")
    scans_url = serializers.HyperlinkedIdentityField(view_name="api:case-scans")
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.none(),
        required=False,
        help_text="One of your teams; may be left out when you belong to exactly one.",
    )
    team_name = serializers.CharField(source="team.name", read_only=True)
    task = serializers.ChoiceField(
        choices=tasks.choices(),
        default=tasks.DEFAULT,
        help_text="The clinical question: its active model classifies the case's scans.",
    )
    task_label = serializers.CharField(source="get_task_display", read_only=True)
    created_by = serializers.CharField(source="created_by.get_username", read_only=True)
    patient_reference = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="Stored only as a keyed hash (patient_ref_hash); finds the patient's earlier cases.",
    )

    class Meta:
        model = Case
        fields = [
            "id",
            "url",
            "pseudonym",
            "team",
            "team_name",
            "status",
            "flag",
            "task",
            "task_label",
            "notes",
            "patient_reference",
            "patient_ref_hash",
            "created_by",
            "created_at",
            "updated_at",
            "scans_url",
        ]
        read_only_fields = ["pseudonym", "status", "flag", "patient_ref_hash", "created_at", "updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["team"].queryset = teams_of(request.user)

    def validate(self, attrs):
        if "team" not in attrs:
            teams = list(teams_of(self.context["request"].user)[:2])
            if len(teams) != 1:
                raise serializers.ValidationError({"team": ["Choose one of your teams."]})
            attrs["team"] = teams[0]
        return attrs

    def create(self, validated_data):
        return Case.open(
            validated_data["created_by"],
            validated_data["team"],
            validated_data.get("notes", ""),
            validated_data.get("patient_reference", ""),
            validated_data.get("task", tasks.DEFAULT),
        )


@extend_schema_serializer(examples=api_examples.CASE_UPDATE_EXAMPLES)
class CaseUpdateSerializer(StrictInput, serializers.ModelSerializer):
    class Meta:
        model = Case
        fields = ["status", "task", "notes"]


@extend_schema_serializer(examples=api_examples.UPLOAD_EXAMPLES)
class UploadResponseSerializer(serializers.Serializer):
    scans = ScanSerializer(many=True)
