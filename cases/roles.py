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


def role_names(user) -> frozenset:
    """The user's role groups, read once per user object (one query a request, whichever role
    checks run: the worklist's query budget counts it)."""
    cached = getattr(user, "_role_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._role_names = cached
    return cached


def is_steward(user) -> bool:
    if not user.is_authenticated:
        return False
    return user.is_superuser or STEWARD_GROUP in role_names(user)


def is_pacs_account(user) -> bool:
    return user.is_authenticated and PACS_GROUP in role_names(user)


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
