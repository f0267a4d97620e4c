"""Admin: reference datasets and the state of their cached statistics (read-only)."""

from django.contrib import admin

from .models import DatasetStats, ReferenceDataset


class DatasetStatsInline(admin.StackedInline):
    model = DatasetStats
    fields = ["status", "computed_at", "seconds", "error"]
    readonly_fields = fields
    can_delete = False
    extra = 0


@admin.register(ReferenceDataset)
class ReferenceDatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "root", "imported_at"]
    readonly_fields = ["name", "kind", "root", "created_at", "imported_at"]
    inlines = [DatasetStatsInline]

    def has_add_permission(self, request):
        return False  # datasets are registered with manage.py import_dataset
