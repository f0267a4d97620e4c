"""Export consenting cases' labelled scans for training.

manage.py export_training_images DIR --steward NAME
"""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cases.access import is_steward
from cases.training import export_training_images


class Command(BaseCommand):
    help = "Write de-identified PNGs of scans whose case consents to model training, with a manifest."

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path, help="Output folder (created; must be empty if it exists)")
        parser.add_argument("--steward", required=True, help="The data steward responsible (audited)")

    def handle(self, folder, steward, **options):
        user = get_user_model().objects.filter(username=steward, is_active=True).first()
        if user is None or not is_steward(user):
            raise CommandError(
                f"{steward!r} is not an active data steward; only stewards export training data."
            )
        if folder.exists() and any(folder.iterdir()):
            raise CommandError(f"{folder} is not empty; choose a new folder so no older export is mixed in.")
        result = export_training_images(folder, user)
        self.stdout.write(f"Exported {result.files} scan(s) with training consent to {folder}.")
        if result.skipped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in result.skipped.items())
            self.stdout.write(f"Skipped {sum(result.skipped.values())} labelled scan(s): {reasons}.")
