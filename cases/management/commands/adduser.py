"""Create a clinician, data-steward or PACS account: manage.py adduser NAME --role clinician --team NAME."""

import getpass
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from cases.models import Membership, Team
from cases.roles import PACS_GROUP, ensure_groups, pacs_group

ROLES = ["clinician", "steward", PACS_GROUP]


class Command(BaseCommand):
    help = (
        "Create a user with a role and, for clinicians and PACS accounts, a team. A PACS account "
        f"(--role {PACS_GROUP}) only pushes studies (STOW-RS) into its one team with its API token "
        "(manage.py drf_create_token NAME): it has no password, as it never logs in, and is refused by "
        "/api/v1/."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLES, required=True)
        parser.add_argument(
            "--team", help=f"Team name (created if new); required for clinicians and {PACS_GROUP} accounts"
        )
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-file",
            type=Path,
            help=f"Read the password from this file's first line instead of prompting (not for {PACS_GROUP})",
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
        if role != "steward" and not team_name:
            raise CommandError(f"A {role} account needs a team: pass --team NAME.")
        if role == PACS_GROUP and options["password_file"]:
            raise CommandError(
                f"A {PACS_GROUP} account has no password (it never logs in): drop --password-file."
            )
        if User.objects.filter(username=username).exists():
            raise CommandError(f"The user {username!r} already exists.")
        password = None if role == PACS_GROUP else self._password(options)
        if password is not None:
            try:
                validate_password(password, User(username=username, email=options["email"]))
            except ValidationError as error:
                raise CommandError("Password rejected: " + " ".join(error.messages)) from None
        with transaction.atomic():
            clinician, steward = ensure_groups()
            # A password of None is an unusable one.
            user = User.objects.create_user(
                username=username, email=options["email"], password=password, is_staff=role == "steward"
            )
            user.groups.add({"clinician": clinician, "steward": steward, PACS_GROUP: pacs_group()}[role])
            if team_name:
                team, _ = Team.objects.get_or_create(name=team_name)
                Membership.objects.create(user=user, team=team)
        where = f" in team {team_name}" if team_name else ""
        self.stdout.write(self.style.SUCCESS(f"Created {role} {username}{where}."))
        if role == PACS_GROUP:
            self.stdout.write(f"Its API token, for the PACS: manage.py drf_create_token {username}")
