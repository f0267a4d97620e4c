"""The Celery app; configuration comes from Django settings (CELERY_*)."""

import os

from celery import Celery, platforms
from celery.signals import beat_embedded_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brainscan.settings.base")

app = Celery("brainscan")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect(weak=False)
def lower_cpu_priority(**kwargs):
    """Classify at a lower CPU priority than the web process (WORKER_NICE): on a shared machine a
    burst of scans slows itself down, not the pages. Connected before the model warm-up, so the
    model's threads inherit it."""
    from django.conf import settings

    if settings.WORKER_NICE:
        os.nice(settings.WORKER_NICE)


def _end_with_the_worker(**kwargs):
    # Celery does this for its pool processes but not for `worker --beat`'s scheduler: a worker
    # killed with SIGKILL left it running, and its replacement started a second one.
    platforms.set_pdeathsig("SIGKILL")


beat_embedded_init.connect(_end_with_the_worker, weak=False)
