"""What cases announce to the apps that build on them; cases itself imports none of them.

``scans_ready``: scans were stored (or released by a steward) and are queued for classification.
Sent once their transaction has committed, with ``scan_ids``; ``inference`` publishes their tasks.

``series_changed``: a series lost a slice (retracted), so its verdict is judged again over the
slices it has now. Sent on commit, with ``series_ids``; ``inference`` refreshes their verdicts.
"""

from django.db import transaction
from django.dispatch import Signal

scans_ready = Signal()
series_changed = Signal()


def announce_ready(sender, scan_ids: list[int]) -> None:
    """Send ``scans_ready`` (from ``sender``, the Scan model) for ``scan_ids`` once the current
    transaction commits."""
    if scan_ids:
        ids = list(scan_ids)
        transaction.on_commit(lambda: scans_ready.send(sender=sender, scan_ids=ids))


def announce_series_changed(sender, series_ids: list[int]) -> None:
    """Send ``series_changed`` for ``series_ids`` once the current transaction commits."""
    ids = [series_id for series_id in series_ids if series_id is not None]
    if ids:
        transaction.on_commit(lambda: series_changed.send(sender=sender, series_ids=ids))
