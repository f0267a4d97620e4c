"""The Celery worker the benchmarks start (manage.py bench_pipeline, bench_load): one process on
a queue of its own, under a node name of its own (a starting worker re-queues the scans claimed
under its name, and `make run`'s worker is celery@<host>)."""

import os
import subprocess
import sys

from django.conf import settings


def start_bench_worker(queue: str, output=None) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "brainscan", "worker", "-Q", queue, "-n", f"{queue}@%h"]
    command += ["--concurrency", "1", "--loglevel", "WARNING", "--without-mingle", "--without-gossip"]
    return subprocess.Popen(  # noqa: S603 -- our own worker
        command, cwd=settings.BASE_DIR, env=os.environ.copy(), stdout=output, stderr=output
    )
