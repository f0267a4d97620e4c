"""Which cached aggregate images of case scans a user may see.

The mean of one scan is that scan, and a team that knows its own scans can subtract them from a
mean that holds few others. So for a clinician a class's mean and variability images are shown
only when it holds at least ANALYTICS_MIN_CLASS_SCANS scans from teams other than the clinician's,
out of at least two teams; a difference image only when both of its classes are shown. Data
stewards see every aggregate, and folder datasets (public collections) are shown whole.
"""

from django.conf import settings

from cases.access import is_steward, teams_of

from .models import ReferenceDataset

AGGREGATE_PREFIXES = ("mean-", "std-", "diff-")


def shown_classes(dataset, data, user) -> set[str]:
    labels = data.get("classes", [])
    if dataset.kind == ReferenceDataset.Kind.FOLDER or is_steward(user):
        return set(labels)
    # {label: {team id: scans}}; statistics cached before this rule lack it: shown after a recompute.
    per_team = data.get("class_teams")
    if per_team is None:
        return set()
    own = {str(pk) for pk in teams_of(user).values_list("pk", flat=True)}
    minimum = settings.ANALYTICS_MIN_CLASS_SCANS
    shown = set()
    for label in labels:
        counts = per_team.get(label, {})
        from_others = sum(count for team, count in counts.items() if team not in own)
        if len(counts) >= 2 and from_others >= minimum:
            shown.add(label)
    return shown


def shown_files(dataset, data, user) -> set[str]:
    """The aggregate image keys (mean-, std-, diff-) the user may open."""
    labels = shown_classes(dataset, data, user)
    keys = {f"{kind}-{label}.png" for label in labels for kind in ("mean", "std")}
    keys |= {f"diff-{a}-{b}.png" for a, b in data.get("pairs", []) if a in labels and b in labels}
    return keys
