"""Role groups (clinician, data steward) and the permissions a steward needs to manage users."""

from django.contrib.auth.models import Group, Permission

CLINICIAN_GROUP = "clinician"
STEWARD_GROUP = "steward"


def is_steward(user) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_is_steward", None)
    if cached is None:
        cached = user.groups.filter(name=STEWARD_GROUP).exists()
        user._is_steward = cached
    return cached


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
    ("cases", "studyimport", ("view",)),
    ("inference", "modelversion", ("view",)),
    ("inference", "seriesverdict", ("view",)),
    ("inference", "seriesreview", ("view",)),
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
