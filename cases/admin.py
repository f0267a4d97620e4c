"""Django admin for stewards: cases (consent, erasure), scans (held scans, release), anonymisation
reports and the audit log (filters, CSV export). User accounts and teams are in
admin_accounts.py, studies received from the PACS in admin_pacs.py, registered from here."""

import json
from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import (
    admin_accounts,  # noqa: F401 -- registers the user account and team admins
    admin_pacs,  # noqa: F401 -- registers the studies received from the PACS
    export,
)
from .access import is_steward
from .models import (
    AnonymisationReport,
    AuditEvent,
    Case,
    Consent,
    ConsentEvent,
    Scan,
    erase_case_images,
)

User = get_user_model()


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ConsentInline(ReadOnlyInline):
    model = Consent
    fields = ["scope", "state", "recorded_by", "recorded_at", "note"]
    readonly_fields = fields


class ConsentEventInline(ReadOnlyInline):
    model = ConsentEvent
    verbose_name_plural = "Consent history"
    fields = ["recorded_at", "scope", "state", "recorded_by", "note"]
    readonly_fields = fields


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["pseudonym", "team", "task", "status", "flag", "created_at"]
    list_filter = ["status", "flag", "task", "team"]
    search_fields = ["pseudonym"]
    # The question changes on the case page or the API only (Case.change: settled once reviewed, audited).
    readonly_fields = ["pseudonym", "task", "patient_ref_hash", "created_by", "created_at"]
    inlines = [ConsentInline, ConsentEventInline]
    actions = ["erase_images"]

    def has_add_permission(self, request):
        # Cases are opened on the Cases page, which hashes the patient reference, names the
        # creator and audits the creation; the admin only manages existing cases.
        return False

    @admin.action(description="Erase the images of the selected cases (keeps tombstones, audited)")
    def erase_images(self, request, queryset):
        if not is_steward(request.user):
            self.message_user(request, "Only data stewards erase images.", messages.ERROR)
            return
        if request.POST.get("post") != "yes":
            # Irreversible: show what will go and ask once, as Django's delete action does.
            return self.erase_images_confirmation(request, queryset)
        erased = sum(len(erase_case_images(case, request.user)) for case in queryset)
        self.message_user(request, f"Erased the images of {erased} scan(s); the rows remain as tombstones.")

    def erase_images_confirmation(self, request, queryset):
        from inference.models import Prediction

        cases = queryset.annotate(
            stored_scans=Count("scans", filter=Q(scans__erased_at=None)),
            all_scans=Count("scans"),
        )
        explanations = Prediction.objects.filter(scan__case__in=queryset, scan__erased_at=None).exclude(
            explanation=""
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Erase the images? This cannot be undone",
            "opts": self.model._meta,
            "cases": cases,
            "scan_count": sum(case.stored_scans for case in cases),
            "explanation_count": explanations.count(),
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/cases/case/erase_images_confirmation.html", context)


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    """Consent is changed only through Consent.record, so every change joins the history."""

    list_display = ["case", "scope", "state", "recorded_by", "recorded_at"]
    list_filter = ["scope", "state"]
    search_fields = ["case__pseudonym"]
    fields = ["case", "scope", "state", "note", "recorded_by", "recorded_at"]
    readonly_fields = ["recorded_by", "recorded_at"]
    autocomplete_fields = ["case"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["case", "scope"] if obj else [])

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        recorded = Consent.record(obj.case, obj.scope, obj.state, request.user, note=obj.note)
        obj.pk, obj.recorded_by, obj.recorded_at = recorded.pk, recorded.recorded_by, recorded.recorded_at


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only records (consent history, anonymisation reports, audit): view, never edit."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdmin):
    list_display = ["recorded_at", "case", "scope", "state", "recorded_by"]
    list_filter = ["scope", "state"]
    search_fields = ["case__pseudonym"]
    readonly_fields = [f.name for f in ConsentEvent._meta.fields]


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    list_display = ["pk", "case", "modality", "status", "outcome", "uploaded_at", "erased_at"]
    list_filter = ["status", "modality", "outcome"]
    search_fields = ["case__pseudonym", "sha256"]
    # The stored file has no public URL: the image is linked through the access-checked view.
    readonly_fields = [f.name if f.name != "image" else "image_link" for f in Scan._meta.fields]
    exclude = ["image"]
    actions = ["release"]

    @admin.display(description="image")
    def image_link(self, obj):
        if not obj.image:
            return "erased" if obj.erased_at else "-"
        return format_html('<a href="{}">View the image</a>', reverse("cases:scan_image", args=[obj.pk]))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Release held scans for classification (pixels checked)")
    def release(self, request, queryset):
        if not is_steward(request.user):
            self.message_user(request, "Only data stewards release held scans.", messages.ERROR)
            return
        released = sum(scan.release(request.user) for scan in queryset.filter(status=Scan.Status.HELD))
        self.message_user(request, f"Released {released} held scan(s) for classification.")


@admin.register(AnonymisationReport)
class AnonymisationReportAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "case", "uploaded_by", "file_count", "held_count"]
    list_filter = [("created_at", admin.DateFieldListFilter)]
    search_fields = ["case__pseudonym"]
    fields = ["case", "uploaded_by", "created_at", "summary"]
    readonly_fields = fields

    @admin.display(description="files")
    def file_count(self, obj):
        return len(obj.files)

    @admin.display(description="held")
    def held_count(self, obj):
        return sum(bool(entry.get("held")) for entry in obj.files)

    @admin.display(description="What was removed or replaced")
    def summary(self, obj):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            (
                (
                    entry.get("scan"),
                    entry.get("format"),
                    json.dumps({k: v for k, v in entry.items() if k not in ("scan", "format")}, indent=1),
                )
                for entry in obj.files
            ),
        )
        return format_html("<table><tr><th>Scan</th><th>Format</th><th>Report</th></tr>{}</table>", rows)


class AuditCaseFilter(admin.SimpleListFilter):
    """Events about one case: the case itself, or its scans/predictions (detail["case"])."""

    title = "case"
    parameter_name = "case"

    def lookups(self, request, model_admin):
        return [(str(case.pk), case.pseudonym) for case in Case.objects.only("pseudonym")[:50]]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(object_type="cases.case", object_id=value) | queryset.filter(
            detail__case=int(value)
        )


class AuditActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        names = AuditEvent.objects.exclude(actor_username="").values_list("actor_username", flat=True)
        return [(name, name) for name in names.distinct().order_by("actor_username")[:100]]

    def queryset(self, request, queryset):
        return queryset.filter(actor_username=self.value()) if self.value() else queryset


AUDIT_COLUMNS = ["created_at", "actor", "client_ip", "verb", "object", "object_type", "object_id", "detail"]


def describe_subjects(events):
    """Name each event's object as a person reads it, with a few queries for the whole list: a case
    by its pseudonym, a scan (and a reviewed prediction) by its scan and that scan's case, a user
    by username, a model by name and version. Sets ``event.subject``; returns ``events``."""
    from inference.models import ModelVersion, Prediction

    ids = defaultdict(set)
    for event in events:
        if event.object_id.isdigit():
            ids[event.object_type].add(int(event.object_id))
    scan_of_prediction = dict(
        Prediction.objects.filter(pk__in=ids["inference.prediction"]).values_list("pk", "scan_id")
    )
    case_of_scan = dict(
        Scan.objects.filter(pk__in=ids["cases.scan"] | set(scan_of_prediction.values())).values_list(
            "pk", "case_id"
        )
    )
    pseudonyms = dict(
        Case.objects.filter(pk__in=ids["cases.case"] | set(case_of_scan.values())).values_list(
            "pk", "pseudonym"
        )
    )
    usernames = dict(User.objects.filter(pk__in=ids["auth.user"]).values_list("pk", "username"))
    models = {m.pk: str(m) for m in ModelVersion.objects.filter(pk__in=ids["inference.modelversion"])}

    def scan_name(scan_id):
        case = pseudonyms.get(case_of_scan.get(scan_id))
        return f"scan {scan_id} of {case}" if case else f"scan {scan_id}"

    for event in events:
        key = int(event.object_id) if event.object_id.isdigit() else None
        if key is None:
            event.subject = ""
        elif event.object_type == "cases.case" and key in pseudonyms:
            event.subject = pseudonyms[key]
        elif event.object_type == "cases.scan":
            event.subject = scan_name(key)
        elif event.object_type == "inference.prediction" and key in scan_of_prediction:
            event.subject = scan_name(scan_of_prediction[key])
        elif event.object_type == "auth.user" and key in usernames:
            event.subject = f"user {usernames[key]}"
        elif event.object_type == "inference.modelversion" and key in models:
            event.subject = f"model {models[key]}"
        else:
            event.subject = f"{event.object_type} {event.object_id} (deleted)"
    return events


class AuditChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        describe_subjects(self.result_list)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_username", "client_ip", "verb", "subject"]
    list_filter = [AuditActorFilter, "verb", AuditCaseFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_username", "object_id", "client_ip"]
    date_hierarchy = "created_at"
    change_list_template = "admin/cases/auditevent/change_list.html"
    fields = [
        "created_at",
        "actor_username",
        "client_ip",
        "verb",
        "subject",
        "object_type",
        "object_id",
        "detail",
    ]
    readonly_fields = fields

    def get_changelist(self, request, **kwargs):
        return AuditChangeList

    @admin.display(description="object")
    def subject(self, event):
        if not hasattr(event, "subject"):
            describe_subjects([event])
        return event.subject

    def get_search_results(self, request, queryset, search_term):
        """A case's pseudonym finds the events about the case, its scans and their reviews."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        case = Case.objects.filter(pseudonym=search_term.strip()).first() if search_term.strip() else None
        if case is not None:
            results |= queryset.filter(object_type="cases.case", object_id=str(case.pk))
            results |= queryset.filter(detail__case=case.pk)
        return results, may_have_duplicates

    def get_urls(self):
        view = self.admin_site.admin_view(self.export_csv)
        return [path("export.csv", view, name="cases_auditevent_export")] + super().get_urls()

    def export_csv(self, request):
        """The audit log as filtered on the change list, as CSV (streamed, audited itself)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        events = self.get_changelist_instance(request).get_queryset(request)
        filters = {key: value for key, value in request.GET.items() if value}
        AuditEvent.record(request.user, AuditEvent.Verb.AUDIT_EXPORT, filters=filters)

        def rows():
            yield AUDIT_COLUMNS
            chunk = []
            for event in events.iterator(chunk_size=500):
                chunk.append(event)
                if len(chunk) == 500:
                    yield from _audit_rows(chunk)
                    chunk = []
            yield from _audit_rows(chunk)

        return export.csv_response(rows(), export.export_filename(what="audit"))


def _audit_rows(events):
    for event in describe_subjects(events):
        yield [
            event.created_at.isoformat(),
            event.actor_username,
            event.client_ip or "",
            event.verb,
            event.subject,
            event.object_type,
            event.object_id,
            json.dumps(event.detail, sort_keys=True),
        ]
