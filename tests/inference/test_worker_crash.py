"""A real worker process (celery prefork, its own interpreter) on a disposable Redis, killed with
SIGKILL: its children go with it, and the scan it had in flight is classified again soon, once."""

import os
import signal
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cases.models import Scan
from cases.uploads import clean_upload, store_scans
from inference.models import Prediction
from tests.conftest import real_mri_images
from tests.services import is_alive, start_worker, wait_until_ready
from tests.waiting import wait_for

pytestmark = pytest.mark.worker

# The goal for a scan in flight when its worker dies: done this soon after a new worker is up.
RECOVERY_GOAL_S = 30


def test_killing_the_worker_takes_its_pool_and_embedded_beat_with_it(
    transactional_db, close_thread_connections, disposable_redis, tmp_path
):
    worker = start_worker(tmp_path, disposable_redis.url, beat=True)
    try:
        wait_until_ready(worker)
        # The pool process and the embedded beat.
        children = wait_for(
            lambda: len(worker.children()) >= 2 and worker.children(), timeout=30, message="two children"
        )

        worker.kill()

        wait_for(
            lambda: not any(is_alive(pid) for pid in children),
            timeout=5,
            message=f"the worker's children {children} to end with it",
        )
    finally:
        worker.close()


@pytest.fixture
def scan_in_flight(
    celery_worker, close_thread_connections, disposable_redis, tmp_path, case, owner, monkeypatch
):
    """A scan published to the disposable Redis and claimed by a worker whose classification
    hangs; yields (scan, worker, marker, started): deleting the marker lets its classifications
    through, and workers appended to started are closed at the end."""
    from brainscan.celery import app
    from inference.tasks import classify_scan

    path = real_mri_images(1, classes=("glioma",))[0]
    monkeypatch.setattr("inference.tasks.enqueue_classification", lambda scan_id: None)
    [scan] = store_scans(case, owner, [clean_upload(SimpleUploadedFile(path.name, path.read_bytes()))])
    marker = tmp_path / "stall"
    marker.touch()
    worker = start_worker(tmp_path, disposable_redis.url, stall_while=marker)
    started = []
    try:
        with app.connection_for_write(disposable_redis.url) as connection:
            classify_scan.apply_async((scan.pk,), connection=connection)
        wait_for(
            lambda: Scan.objects.filter(pk=scan.pk, status=Scan.Status.PROCESSING).exists(),
            timeout=180,
            message="the worker to claim the scan",
        )
        yield scan, worker, marker, started
    finally:
        worker.close()
        for other in started:
            other.close()


def finished(scan_id):
    return Scan.objects.filter(pk=scan_id, status__in=[Scan.Status.DONE, Scan.Status.FAILED]).first()


def test_a_scan_in_flight_when_the_worker_is_killed_is_done_soon_after_a_new_worker_is_up(
    scan_in_flight, disposable_redis, tmp_path
):
    scan, first, _marker, started = scan_in_flight
    children = first.children()

    first.kill()  # the main process; its pool process dies with it
    wait_for(lambda: not any(is_alive(pid) for pid in children), timeout=5, message="the pool to die")
    # The same worker started again (as make run, or a restarted container, would).
    second = start_worker(tmp_path, disposable_redis.url)
    started.append(second)
    wait_until_ready(second)
    up = time.monotonic()

    done = wait_for(lambda: finished(scan.pk), timeout=120, message="the scan to be classified")
    recovery = time.monotonic() - up

    print(f"\nscan in flight, worker SIGKILLed: done {recovery:.1f} s after a new worker was up")
    assert done.status == Scan.Status.DONE, done.failure_reason
    assert Prediction.objects.filter(scan=scan).count() == 1
    assert done.attempts == 2
    assert recovery <= RECOVERY_GOAL_S


def test_a_scan_whose_pool_process_is_killed_is_classified_by_the_redelivered_task(scan_in_flight):
    scan, worker, marker, _started = scan_in_flight
    [pool_process] = worker.children()

    os.kill(pool_process, signal.SIGKILL)  # as the OOM killer would
    marker.unlink()
    killed = time.monotonic()

    done = wait_for(lambda: finished(scan.pk), timeout=120, message="the scan to be classified")
    recovery = time.monotonic() - killed

    print(f"\nscan in flight, pool process SIGKILLed: done {recovery:.1f} s later")
    assert done.status == Scan.Status.DONE, done.failure_reason
    assert Prediction.objects.filter(scan=scan).count() == 1
    assert done.attempts == 2
    assert recovery <= RECOVERY_GOAL_S
