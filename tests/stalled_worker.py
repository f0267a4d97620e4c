"""`python -m tests.stalled_worker -A brainscan worker ...`: the celery command, but each
classification first waits while the file named by STALL_WHILE_EXISTS exists, so a test can kill
the worker (or its pool process) with a scan in flight."""

import os
import sys
import time
from pathlib import Path


def main():
    from celery.bin.celery import main as celery

    from inference import runtime

    marker = Path(os.environ["STALL_WHILE_EXISTS"])
    classify = runtime.classify_image

    def stalled(model_version, data):
        while marker.exists():
            time.sleep(0.05)
        return classify(model_version, data)

    runtime.classify_image = stalled  # the pool process is forked from here and inherits it
    sys.argv[0] = "celery"
    sys.exit(celery())


if __name__ == "__main__":
    main()
