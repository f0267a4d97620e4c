#!/usr/bin/env python
"""Django's command-line utility."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brainscan.settings.base")
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
