#!/usr/bin/env python
"""Django's command-line utility."""

import os
import sys
from pathlib import Path


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brainscan.settings.base")
    if "BRAINSCAN_VAR_DIR" not in os.environ:
        # The embedded default (a checkout's own var/): the keys `make run` would generate. A
        # deployment names its var dir (the image: /data) and brings its keys; nothing is made there.
        from brainscan.settings.env import ensure_local_keys

        ensure_local_keys(Path(__file__).resolve().parent / "var", ("SECRET_KEY", "PATIENT_REF_KEY"))
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  loads the settings, which read the environment
    except ImproperlyConfigured as error:
        # A missing or bad setting is the user's to fix: one line that names it, no traceback.
        sys.exit(f"Configuration error: {error}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
