"""Django admin: read-only model versions, predictions (images linked through the access-checked
views), reviews, series verdicts and their reviews."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from cases.admin import ReadOnlyAdmin

from .models import ModelVersion, Prediction, Review, SeriesReview, SeriesVerdict


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "task", "is_active", "is_available", "card_created_at"]
    list_filter = ["task", "is_active"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["scan", "model_version", "label", "confidence", "latency_ms", "created_at"]
    # Stored files have no public URL: images are linked through the access-checked views.
    readonly_fields = [
        f.name if f.name != "explanation" else "explanation_link" for f in Prediction._meta.fields
    ]
    readonly_fields.insert(readonly_fields.index("scan") + 1, "scan_image_link")
    exclude = ["explanation"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="scan image")
    def scan_image_link(self, obj):
        if not obj.scan.image:
            return "erased" if obj.scan.erased_at else "-"
        return format_html('<a href="{}">View the scan</a>', reverse("cases:scan_image", args=[obj.scan_id]))

    @admin.display(description="explanation")
    def explanation_link(self, obj):
        if not obj.explanation:
            return "-"
        url = reverse("cases:explanation_image", args=[obj.pk])
        return format_html('<a href="{}">View the explanation (Grad-CAM)</a>', url)


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    """Reviews are written by clinicians on the case page or the API, beside the prediction and
    audited there; here they are only read."""

    list_display = ["prediction", "decision", "label", "reviewer", "created_at"]
    # Named, not read from _meta: the fields shared with SeriesReview (inference.reviewbase) would
    # come first there, before what is reviewed and by whom.
    readonly_fields = ["id", "prediction", "reviewer", "decision", "label", "comment", "created_at"]


@admin.register(SeriesVerdict)
class SeriesVerdictAdmin(ReadOnlyAdmin):
    """Written by the worker when a series' last slice is answered (and its report-back state by
    the report task); UIDs here are BrainScan's own (remapped series, the objects it sent)."""

    list_display = ["series", "model_version", "tumour_suspected", "label", "report_state", "computed_at"]
    list_filter = ["tumour_suspected", "report_state", "has_rule"]
    search_fields = ["series__case__pseudonym"]
    readonly_fields = [f.name for f in SeriesVerdict._meta.fields]


@admin.register(SeriesReview)
class SeriesReviewAdmin(ReadOnlyAdmin):
    """Written by clinicians on the case page or the API (cases/forms_series.py), audited there."""

    list_display = ["verdict", "decision", "label", "reviewer", "created_at"]
    search_fields = ["verdict__series__case__pseudonym"]
    exclude = ["scans"]
    readonly_fields = ["id", "verdict", "reviewer", "decision", "label", "comment", "created_at"]
    readonly_fields += ["covered_scans"]

    @admin.display(description="Slices it answers for (scan ids)")
    def covered_scans(self, obj):
        return ", ".join(str(pk) for pk in obj.scans.order_by("pk").values_list("pk", flat=True)) or "-"
