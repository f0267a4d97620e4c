"""What cases announce to the apps that build on them; cases itself imports none of them.

``scans_ready``: scans were stored (or released by a steward) and are queued for classification.
Sent once their transaction has committed, with ``scan_ids``; ``inference`` publishes their tasks.
"""

from django.db import transaction
from django.dispatch import Signal

scans_ready = Signal()


def announce_ready(sender, scan_ids: list[int]) -> None:
    """Send ``scans_ready`` (from ``sender``, the Scan model) for ``scan_ids`` once the current
    transaction commits."""
    if scan_ids:
        ids = list(scan_ids)
        transaction.on_commit(lambda: scans_ready.send(sender=sender, scan_ids=ids))
