"""The worker classifies at a lower CPU priority than the web process (WORKER_NICE)."""

import os
import subprocess
import sys
import uuid

from tests.conftest import REPO_ROOT
from tests.services import children_of, standalone_env, terminate
from tests.waiting import wait_for


def test_prefork_worker_processes_run_niced_below_the_main_process(tmp_path):
    env = standalone_env(
        tmp_path,
        CELERY_QUEUE=f"priority-test-{uuid.uuid4().hex[:8]}",
        ML_MODELS_ROOT=str(tmp_path / "no-models"),
        WORKER_NICE="7",
    )
    command = [sys.executable, "-m", "celery", "-A", "brainscan", "worker", "--pool", "prefork"]
    command += ["--concurrency", "1", "--without-mingle", "--without-gossip", "--loglevel", "ERROR"]
    worker = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        main_nice = os.getpriority(os.PRIO_PROCESS, worker.pid)
        [child] = wait_for(lambda: children_of(worker.pid), timeout=120, message="the pool's process")
        wait_for(
            lambda: os.getpriority(os.PRIO_PROCESS, child) == min(main_nice + 7, 19),
            timeout=60,
            message=f"the pool's process to run at nice {main_nice} + 7",
        )
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == main_nice
    finally:
        terminate(worker, timeout=30)
