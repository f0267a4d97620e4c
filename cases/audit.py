"""The audit trail's request context (client address) and its receivers for authentication
events; other events are recorded where they happen, through AuditEvent.record."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .models import AuditEvent


class AuditRequestMiddleware:
    """Lets AuditEvent.record name the client of the request being served (one place for all)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with AuditEvent.serving(request):
            return self.get_response(request)


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
    AuditEvent.record(None, AuditEvent.Verb.LOGIN_FAILED, username=attempted)
