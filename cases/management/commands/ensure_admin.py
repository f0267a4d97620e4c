"""Make sure a first administrator exists, without ever waiting on a prompt.

If no superuser exists, create `admin` with a generated password, print it once and write
it to a file readable only by its owner (var/admin-password.txt by default).
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from cases.access import STEWARD_GROUP
from cases.roles import ensure_groups


class Command(BaseCommand):
    help = "Create the first admin account (username admin) with a generated password if none exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password-out", type=Path, default=Path(settings.VAR_DIR) / "admin-password.txt"
        )

    def handle(self, *args, username, password_out, **options):
        User = get_user_model()
        ensure_groups()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                f"An admin account exists (first admin password, if generated: {password_out})."
            )
            return
        password = secrets.token_urlsafe(18)
        with transaction.atomic():
            user = User.objects.create_superuser(username=username, email="", password=password)
            user.groups.add(*ensure_groups()[1:])
        password_out.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(password_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{password}\n")
        os.chmod(password_out, 0o600)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the first admin account.\n  username: {username}\n  password: {password}\n"
                f"  (shown once; also in {password_out}, readable only by you). "
                f"The account is in the {STEWARD_GROUP} role; change the password after logging in."
            )
        )
