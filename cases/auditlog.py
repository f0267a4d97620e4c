"""The append-only audit log: AuditEvent and how an event names its actor, object and client.
Its receivers (logins, account changes) and request middleware are in cases.audit."""

import ipaddress
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import models

from brainscan.clientip import client_ip
from brainscan.text import without_nul

from .appendonly import AppendOnly
from .refusals import Refusal

# The request being served (set by cases.audit.AuditRequestMiddleware), so that every audit
# event names its client address, whichever page, API view, admin action or signal records it.
_serving = ContextVar("audit_request", default=None)


class AuditEvent(AppendOnly):
    append_only_message = "Audit events are append-only."

    class Verb(models.TextChoices):
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Failed login"
        LOGOUT = "logout", "Logged out"
        CASE_CREATE = "case_create", "Created case"
        CASE_VIEW = "case_view", "Viewed case"
        CASE_UPDATE = "case_update", "Updated case"
        UPLOAD = "upload", "Uploaded scans"
        UPLOAD_REJECTED = "upload_rejected", "Upload rejected"
        REVIEW = "review", "Reviewed prediction"
        EXPORT = "export", "Exported CSV"
        MODEL_SWITCH = "model_switch", "Switched active model"
        CONSENT = "consent", "Recorded consent"
        ERASE = "erase", "Erased case images"
        SCAN_RELEASE = "scan_release", "Released held scan"
        SCAN_RETRACT = "scan_retract", "Retracted scan"
        SCAN_RERUN = "scan_rerun", "Ran a scan again under a clinical question"
        TRAINING_EXPORT = "training_export", "Exported training images"
        AUDIT_EXPORT = "audit_export", "Exported audit log"
        USER_CREATE = "user_create", "Created user account"
        USER_CHANGE = "user_change", "Changed user account"
        REFUSED = "refused", "Refused an action"
        PACS_PULL = "pacs_pull", "Asked the PACS for a study"
        PACS_PUSH_REJECTED = "pacs_push_rejected", "Refused a study pushed by the PACS"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # Kept as text so the trail survives the account's deletion.
    actor_username = models.CharField(max_length=150, blank=True)
    verb = models.CharField(max_length=32, choices=Verb.choices)
    object_type = models.CharField(max_length=50, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    # The client of the request that caused the event (brainscan.clientip: X-Forwarded-For only
    # from TRUSTED_PROXIES); empty for the worker and management commands.
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Steward audit page: events newest first, filtered by verb.
            models.Index(fields=["verb", "-created_at"], name="audit_verb_created_idx"),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_username} {self.verb}"

    @staticmethod
    @contextmanager
    def serving(request):
        """Events recorded inside this block come from ``request`` (its client address)."""
        token = _serving.set(request)
        try:
            yield
        finally:
            _serving.reset(token)

    @staticmethod
    def current_request():
        return _serving.get()

    @classmethod
    def record_refusal(cls, actor, obj, action: str, refusal: Exception, **detail):
        """An attempt the rules refused (a closed case, a refused picture, a scan being read):
        who tried what on which object, and the refusal's code, never the request's content."""
        return cls.record(
            actor, cls.Verb.REFUSED, obj, action=action, reason=getattr(refusal, "code", "refused"), **detail
        )

    @classmethod
    @contextmanager
    def refusals(cls, actor, obj, action: str, **detail):
        """A Refusal raised inside this block is recorded (record_refusal) and raised on. Put it
        outside any transaction the refusal rolls back, so that the record stays."""
        try:
            yield
        except Refusal as refusal:
            cls.record_refusal(actor, obj, action, refusal, **detail)
            raise

    @classmethod
    def record(cls, actor, verb, obj=None, **detail):
        user = actor if getattr(actor, "is_authenticated", False) else None
        return cls.objects.create(
            actor=user,
            actor_username=user.get_username() if user else "",
            verb=verb,
            object_type=obj._meta.label_lower if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            # Written whatever odd query string a client sent (keys included).
            detail=without_nul(detail),
            client_ip=_client_address(_serving.get()),
        )


def _client_address(request):
    if request is None:
        return None
    address = client_ip(request)
    try:
        # REMOTE_ADDR is whatever the server put there (empty on a unix socket): an address or nothing.
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None
