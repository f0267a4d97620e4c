"""Create a clinician or data-steward account: manage.py adduser NAME --role clinician --team NAME."""

import getpass
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from cases.models import Membership, Team
from cases.roles import ensure_groups


class Command(BaseCommand):
    help = "Create a user with a role (clinician or steward) and, for clinicians, a team."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=["clinician", "steward"], required=True)
        parser.add_argument("--team", help="Team name (created if new); required for clinicians")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-file",
            type=Path,
            help="Read the password from this file's first line instead of prompting",
        )

    def _password(self, options):
        if options["password_file"]:
            try:
                lines = options["password_file"].read_text().splitlines()
            except OSError as error:
                raise CommandError(f"Cannot read the password file: {error}") from None
            return lines[0] if lines else ""
        if not sys.stdin.isatty():
            raise CommandError("No terminal to prompt for a password: use --password-file.")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The passwords do not match.")
        return first

    def handle(self, *args, **options):
        User = get_user_model()
        username, role, team_name = options["username"], options["role"], options["team"]
        if role == "clinician" and not team_name:
            raise CommandError("A clinician needs a team: pass --team NAME.")
        if User.objects.filter(username=username).exists():
            raise CommandError(f"The user {username!r} already exists.")
        password = self._password(options)
        candidate = User(username=username, email=options["email"])
        try:
            validate_password(password, candidate)
        except ValidationError as error:
            raise CommandError("Password rejected: " + " ".join(error.messages)) from None
        with transaction.atomic():
            clinician, steward = ensure_groups()
            user = User.objects.create_user(
                username=username, email=options["email"], password=password, is_staff=role == "steward"
            )
            user.groups.add(steward if role == "steward" else clinician)
            if team_name:
                team, _ = Team.objects.get_or_create(name=team_name)
                Membership.objects.create(user=user, team=team)
        where = f" in team {team_name}" if team_name else ""
        self.stdout.write(self.style.SUCCESS(f"Created {role} {username}{where}."))
