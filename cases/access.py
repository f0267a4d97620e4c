"""Who may see what: every case, scan and prediction is fetched through these helpers."""

from django.db.models import Exists, OuterRef

from .models import Case, Membership, Scan, Series, StudyImport, Team, predictions

# The access helpers' names.
from .roles import CLINICIAN_GROUP, STEWARD_GROUP, is_pacs_account, is_steward  # noqa: F401
from .studies import series_verdicts


def teams_of(user):
    if is_steward(user):
        return Team.objects.all()
    if not user.is_authenticated or is_pacs_account(user):
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user)


def cases_visible_to(user):
    """Stewards see every case; clinicians see their teams' cases; anyone else sees none (a PACS
    account too, though a member of its team: it only pushes)."""
    if not user.is_authenticated or not user.is_active or is_pacs_account(user):
        return Case.objects.none()
    if is_steward(user):
        return Case.objects.all()
    member = Membership.objects.filter(team=OuterRef("team"), user=user)
    return Case.objects.filter(Exists(member))


def scans_visible_to(user):
    """Scans of the user's visible cases; a retracted scan has left its case (its URLs are 404s)."""
    return Scan.objects.not_retracted().filter(case__in=cases_visible_to(user))


def predictions_visible_to(user):
    return predictions().filter(scan__case__in=cases_visible_to(user), scan__retracted_at=None)


def study_imports_visible_to(user):
    """Pulls and pushes of the user's teams (every team's for a steward)."""
    return StudyImport.objects.filter(team__in=teams_of(user))


def series_visible_to(user):
    return Series.objects.filter(case__in=cases_visible_to(user))


def series_verdicts_visible_to(user):
    return series_verdicts().filter(series__case__in=cases_visible_to(user))
