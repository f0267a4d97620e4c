"""Sync ModelVersion rows with the model cards (model.json) shipped under ml/models/."""

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils.dateparse import parse_datetime

from .models import ModelVersion

logger = logging.getLogger(__name__)


def _find_cards(root: Path):
    """(model_dir, card) for every readable card; an unreadable one is logged and skipped."""
    # ml/card.py is pure Python (no TensorFlow); it is imported only by this command path.
    from ml import tasks
    from ml.card import find_model_dirs, read_card

    for model_dir in find_model_dirs(root):
        try:
            card = read_card(model_dir)
            missing = [key for key in ("name", "version", "task") if key not in card]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            card = card | {"task": tasks.canonical(card["task"])}
        except (OSError, ValueError, KeyError) as error:
            logger.warning("Skipping the model card in %s: %s", model_dir, error)
            continue
        yield model_dir, card


def sync_registry(root: Path | None = None) -> list[ModelVersion]:
    """Create or update one row per card; activate the newest card of a task that has none."""
    root = Path(root or settings.ML_MODELS_ROOT)
    seen = []
    with transaction.atomic():
        for model_dir, card in _find_cards(root) if root.is_dir() else []:
            created_at = parse_datetime(str(card.get("created_at", ""))) if card.get("created_at") else None
            version, _ = ModelVersion.objects.update_or_create(
                name=card["name"],
                version=str(card["version"]),
                defaults={
                    "task": card["task"],
                    "path": model_dir.relative_to(root).as_posix(),
                    "sha256": card.get("sha256", ""),
                    "classes": list(card.get("classes", [])),
                    "metrics": card.get("metrics", {}),
                    "card": card,
                    "card_created_at": created_at,
                    "is_available": True,
                },
            )
            seen.append(version)
        gone = ModelVersion.objects.exclude(pk__in=[v.pk for v in seen])
        gone.update(is_available=False, is_active=False)
        for task in {v.task for v in seen}:
            if not ModelVersion.objects.filter(task=task, is_active=True).exists():
                newest = ModelVersion.objects.filter(task=task, is_available=True).first()
                newest.activate()
                logger.info("Activated %s for task %s", newest, task)
    return seen
