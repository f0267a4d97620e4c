"""Consent per case and scope: the current state (Consent) and its append-only history."""

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from .appendonly import AppendOnly
from .auditlog import AuditEvent


class Consent(models.Model):
    """The current consent of one case for one scope; its full history is in ConsentEvent.

    Change it only through ``Consent.record`` so the history and the audit trail follow.
    """

    class Scope(models.TextChoices):
        CLINICAL = "clinical", "Clinical care"
        ANALYTICS = "analytics", "Analytics and research"
        TRAINING = "training", "Model training"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        GRANTED = "granted", "Granted"
        REFUSED = "refused", "Refused"
        WITHDRAWN = "withdrawn", "Withdrawn"

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="consents")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    recorded_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["case_id", "scope"]
        constraints = [
            models.UniqueConstraint(fields=["case", "scope"], name="consent_case_scope_unique"),
        ]
        indexes = [
            # cases_with_consent(scope): EXISTS (case, scope, state=granted) per case.
            models.Index(fields=["scope", "state", "case"], name="consent_scope_state_case_idx"),
        ]

    def __str__(self):
        return f"{self.case} {self.get_scope_display()}: {self.get_state_display()}"

    @classmethod
    def state_of(cls, case, scope) -> str:
        current = cls.objects.filter(case=case, scope=scope).values_list("state", flat=True).first()
        return current or cls.State.PENDING

    @classmethod
    def record(cls, case, scope, state, user, note=""):
        """Set the consent of ``case`` for ``scope``, append it to the history and audit it."""
        if scope not in cls.Scope.values:
            raise ValueError(f"Unknown consent scope {scope!r}.")
        if state not in cls.State.values:
            raise ValueError(f"Unknown consent state {state!r}.")
        now = timezone.now()
        with transaction.atomic():
            # Two stewards recording at once: lock the case so history and current state agree.
            list(type(case).objects.select_for_update().filter(pk=case.pk).values_list("pk", flat=True))
            consent, _ = cls.objects.update_or_create(
                case=case,
                scope=scope,
                defaults={"state": state, "recorded_by": user, "recorded_at": now, "note": note},
            )
            ConsentEvent.objects.create(
                case=case, scope=scope, state=state, recorded_by=user, recorded_at=now, note=note
            )
            AuditEvent.record(user, AuditEvent.Verb.CONSENT, case, scope=scope, state=state)
        return consent


class ConsentEvent(AppendOnly):
    """One change of consent, append-only: the full history of who recorded what and when."""

    append_only_message = "Consent history is append-only."

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="consent_events")
    scope = models.CharField(max_length=16, choices=Consent.Scope.choices)
    state = models.CharField(max_length=16, choices=Consent.State.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    recorded_at = models.DateTimeField()
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["recorded_at", "id"]
        indexes = [
            # Consent history of one case, oldest first.
            models.Index(fields=["case", "recorded_at"], name="consentevent_case_time_idx"),
        ]

    def __str__(self):
        return f"{self.recorded_at:%Y-%m-%d %H:%M} {self.case_id} {self.scope}={self.state}"
