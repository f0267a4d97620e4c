"""Role groups (clinician, data steward) and the permissions a steward needs to manage users."""

from django.contrib.auth.models import Group, Permission

from .access import CLINICIAN_GROUP, STEWARD_GROUP

STEWARD_PERMISSIONS = [
    ("auth", "user", ("add", "change", "view")),
    ("auth", "group", ("view",)),
    ("cases", "team", ("add", "change", "view")),
    ("cases", "membership", ("add", "change", "delete", "view")),
    ("cases", "case", ("view", "change")),
    ("cases", "consent", ("add", "change", "view")),
    ("cases", "consentevent", ("view",)),
    ("cases", "scan", ("view", "change")),
    ("cases", "anonymisationreport", ("view",)),
    ("cases", "auditevent", ("view",)),
    ("inference", "modelversion", ("view",)),
]


def ensure_groups():
    clinician, _ = Group.objects.get_or_create(name=CLINICIAN_GROUP)
    steward, _ = Group.objects.get_or_create(name=STEWARD_GROUP)
    codenames = [
        (app, f"{action}_{model}") for app, model, actions in STEWARD_PERMISSIONS for action in actions
    ]
    permissions = [
        Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in codenames
    ]
    steward.permissions.set(permissions)
    return clinician, steward
