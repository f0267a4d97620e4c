"""Django admin for studies received from the PACS (StudyImport): read-only, for stewards to follow
pulls and pushes. The source StudyInstanceUID, kept only while a pull is pending, is never shown."""

from django.contrib import admin

from .studyimports import StudyImport


@admin.register(StudyImport)
class StudyImportAdmin(admin.ModelAdmin):
    """Written by the pull task and the STOW-RS view only; here they are read."""

    list_display = ["created_at", "source", "status", "team", "case", "scan_count", "attempts"]
    list_filter = ["source", "status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["case__pseudonym"]
    # Not study_uid: the hospital's own UID, an identifier while the pull still needs it.
    fields = [
        "source",
        "status",
        "team",
        "case",
        "requested_by",
        "study_key",
        "attempts",
        "scan_count",
        "reason",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
