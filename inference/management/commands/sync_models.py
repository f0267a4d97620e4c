"""Register the model cards under ml/models/ as ModelVersion rows (one active per task)."""

from django.core.management.base import BaseCommand

from inference.models import ModelVersion
from inference.registry import sync_registry


class Command(BaseCommand):
    help = "Sync the model registry with the model.json cards in ml/models/."

    def handle(self, *args, **options):
        found = sync_registry()
        if not found:
            self.stdout.write(
                self.style.WARNING("No model cards found under ml/models/; scans will fail until one exists.")
            )
        for version in ModelVersion.objects.filter(is_available=True):
            marker = "active" if version.is_active else "      "
            self.stdout.write(f"  [{marker}] {version.task}: {version} ({version.path})")
