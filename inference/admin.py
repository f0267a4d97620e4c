"""Django admin: read-only model versions and predictions."""

from django.contrib import admin

from .models import ModelVersion, Prediction


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "task", "is_active", "is_available", "card_created_at"]
    list_filter = ["task", "is_active"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["scan", "model_version", "label", "confidence", "latency_ms", "created_at"]
    readonly_fields = [f.name for f in Prediction._meta.fields]

    def has_add_permission(self, request):
        return False
