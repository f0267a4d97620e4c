"""Role groups (clinician, data steward, PACS service account) and the permissions a steward needs
to manage users."""

from django.contrib.auth.models import Group, Permission

CLINICIAN_GROUP = "clinician"
STEWARD_GROUP = "steward"
# A PACS's service account: it pushes studies (STOW-RS) with its API token and does nothing else:
# no /api/v1/, no web login. Its token sits in the PACS's database, read by the PACS's admins.
PACS_GROUP = "pacs"
PACS_ACCOUNT_HELP = (
    f"A data steward or administrator makes one (role {PACS_GROUP!r}, no password, in the one team "
    f'that receives the studies): manage.py adduser NAME --role {PACS_GROUP} --team "TEAM", then '
    "manage.py drf_create_token NAME."
)


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


def is_pacs_account(user) -> bool:
    if not user.is_authenticated:
        return False
    cached = getattr(user, "_is_pacs_account", None)
    if cached is None:
        cached = user.groups.filter(name=PACS_GROUP).exists()
        user._is_pacs_account = cached
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


def pacs_group():
    return Group.objects.get_or_create(name=PACS_GROUP)[0]


def ensure_groups():
    """The clinician and steward groups (returned) and the PACS group, the steward's permissions set."""
    clinician, _ = Group.objects.get_or_create(name=CLINICIAN_GROUP)
    steward, _ = Group.objects.get_or_create(name=STEWARD_GROUP)
    pacs_group()
    codenames = [
        (app, f"{action}_{model}") for app, model, actions in STEWARD_PERMISSIONS for action in actions
    ]
    permissions = [
        Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in codenames
    ]
    steward.permissions.set(permissions)
    return clinician, steward
