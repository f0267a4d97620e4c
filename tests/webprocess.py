"""Run a script in a fresh interpreter configured like the web process, to check what it imports."""

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def run_as_web_process(script: str, *args: str, tmp_path, timeout: int = 300, **env_extra):
    """Run ``script`` with a throwaway in-memory database and filesystem broker; return the
    completed process. The script prints ``HEAVY [...]`` with the heavy modules it loaded."""
    env = os.environ | {"DATABASE_URL": "sqlite://:memory:", "CELERY_BROKER_DIR": str(tmp_path), **env_extra}
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    return subprocess.run(  # noqa: S603  our own test script
        [sys.executable, "-c", script, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
