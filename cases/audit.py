"""The audit trail's request context (client address) and its receivers: authentication events and
every change of a user's roles, groups, active flag or password, whichever door it came through
(admin, Password page, management command). Other events are recorded where they happen."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save
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


User = get_user_model()
FLAGS = ["is_active", "is_staff", "is_superuser"]


def _actor():
    """Who is making the change: the signed-in user of the request, none for a command."""
    user = getattr(AuditEvent.current_request(), "user", None)
    return user if getattr(user, "is_authenticated", False) else None


def _record_account_change(user, changes):
    AuditEvent.record(_actor(), AuditEvent.Verb.USER_CHANGE, user, user=user.get_username(), changes=changes)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def remember_account_before_save(sender, instance, raw=False, update_fields=None, **kwargs):
    instance._audit_before = None
    if raw or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & {*FLAGS, "password"}:
        return  # e.g. last_login at every login: nothing audited can change
    instance._audit_before = sender.objects.filter(pk=instance.pk).values(*FLAGS, "password").first()


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def record_account_save(sender, instance, created, raw=False, update_fields=None, **kwargs):
    before, instance._audit_before = getattr(instance, "_audit_before", None), None
    if raw:
        return
    if created:
        changes = {flag: getattr(instance, flag) for flag in FLAGS}
        changes["password"] = "set" if instance.has_usable_password() else "unusable"
        AuditEvent.record(
            _actor(), AuditEvent.Verb.USER_CREATE, instance, user=instance.get_username(), changes=changes
        )
        return
    if before is None:
        return
    changes = {
        flag: [before[flag], getattr(instance, flag)]
        for flag in FLAGS
        if before[flag] != getattr(instance, flag)
    }
    if before["password"] != instance.password:
        # set_password leaves the new password in _password until save() ends; a hash upgraded
        # at login (check_password) saves only the password field without it: not a change.
        upgraded = getattr(instance, "_password", None) is None and update_fields == frozenset({"password"})
        if not instance.has_usable_password() or not upgraded:
            changes["password"] = "changed" if instance.has_usable_password() else "disabled"
    if changes:
        _record_account_change(instance, changes)


def _name(obj):
    if hasattr(obj, "codename"):
        return f"{obj.content_type.app_label}.{obj.codename}"
    return str(obj)


def _record_relation_change(field, instance, action, reverse, model, pk_set):
    """One event per user whose groups or permissions changed, from either side of the relation."""
    if action == "pre_clear":
        # clear() does not say what it removed: remember it now for post_clear.
        related = getattr(instance, "user_set" if reverse else field).all()
        instance._audit_cleared = list(related)
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        objects, instance._audit_cleared = getattr(instance, "_audit_cleared", []), []
    else:
        objects = list(model.objects.filter(pk__in=pk_set or ()))
    if not objects:
        return
    change = "added" if action == "post_add" else "removed"
    if reverse:
        for user in objects:
            _record_account_change(user, {field: {change: [_name(instance)]}})
    else:
        _record_account_change(instance, {field: {change: sorted(_name(obj) for obj in objects)}})


@receiver(m2m_changed, sender=User.groups.through)
def record_groups_change(sender, instance, action, reverse, model, pk_set, **kwargs):
    _record_relation_change("groups", instance, action, reverse, model, pk_set)


@receiver(m2m_changed, sender=User.user_permissions.through)
def record_permissions_change(sender, instance, action, reverse, model, pk_set, **kwargs):
    _record_relation_change("user_permissions", instance, action, reverse, model, pk_set)
