"""The worker classifies at a lower CPU priority than the web process (WORKER_NICE)."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.waiting import wait_for


def _children(pid):
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_prefork_worker_processes_run_niced_below_the_main_process(tmp_path):
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "brainscan.settings.base",
        "SECRET_KEY": "test-only",
        "PATIENT_REF_KEY": "test-only",
        "BRAINSCAN_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_DIR": str(tmp_path / "broker"),
        "CELERY_QUEUE": f"priority-test-{uuid.uuid4().hex[:8]}",
        "ML_MODELS_ROOT": str(tmp_path / "no-models"),
        "WORKER_NICE": "7",
    }
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    command = [sys.executable, "-m", "celery", "-A", "brainscan", "worker", "--pool", "prefork"]
    command += ["--concurrency", "1", "--without-mingle", "--without-gossip", "--loglevel", "ERROR"]
    worker = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        main_nice = os.getpriority(os.PRIO_PROCESS, worker.pid)
        [child] = wait_for(lambda: _children(worker.pid), timeout=120, message="the pool's process")
        wait_for(
            lambda: os.getpriority(os.PRIO_PROCESS, child) == min(main_nice + 7, 19),
            timeout=60,
            message=f"the pool's process to run at nice {main_nice} + 7",
        )
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == main_nice
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
