"""Audit receivers for authentication events (other events are recorded where they happen)."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .models import AuditEvent


@receiver(user_logged_in)
def record_login(sender, request, user, **kwargs):
    AuditEvent.record(user, AuditEvent.Verb.LOGIN)


@receiver(user_logged_out)
def record_logout(sender, request, user, **kwargs):
    if user is not None:
        AuditEvent.record(user, AuditEvent.Verb.LOGOUT)


@receiver(user_login_failed)
def record_login_failed(sender, credentials, request=None, **kwargs):
    # The attempted username only; the password never reaches the log.
    attempted = str(credentials.get("username", ""))[:150]
    AuditEvent.objects.create(verb=AuditEvent.Verb.LOGIN_FAILED, detail={"username": attempted})
