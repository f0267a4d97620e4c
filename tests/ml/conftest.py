"""Fixtures for ml/: real images from ../shared and one tiny trained model per session."""

import subprocess
import sys
from pathlib import Path

import pytest

from ml.card import Card, ModelInput
from ml.labels import CLASSES, NOTUMOR
from ml.preprocess import PREPROCESS_VERSION

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = REPO_ROOT.parent / "shared" / "datasets"
TUMOUR_TRAINING = DATASETS / "brain-tumor-mri" / "Training"
BR35H = DATASETS / "br35h"
HEALTHY = DATASETS / "alzheimer-mri" / "train" / "NonDemented"


@pytest.fixture(scope="session")
def datasets():
    if not all(folder.is_dir() for folder in (TUMOUR_TRAINING, BR35H, HEALTHY)):
        pytest.skip(f"real MRI datasets not found under {DATASETS}")
    return DATASETS


def make_card(**fields) -> Card:
    """A valid card for a model that exists only in a test; ``fields`` override the defaults."""
    defaults = dict(
        task="brain-tumour",
        name="brain-tumour",
        version="test",
        created_at="2026-01-01T00:00:00+00:00",
        sha256="0" * 64,
        classes=tuple(CLASSES),
        no_finding_class=NOTUMOR,
        input=ModelInput(height=128, width=128),
        preprocessing_version=PREPROCESS_VERSION,
        temperature=1.0,
        tumour_threshold=0.5,
        refer_threshold=0.0,
    )
    return Card(**(defaults | fields))


def tiny_training_command(out: Path, cache: Path) -> list[str]:
    """python -m ml.train for 1 epoch on a few dozen real images (10 per label, 6 healthy)."""
    args = ["--data", TUMOUR_TRAINING, "--data", BR35H, "--out", out, "--epochs", 1, "--limit", 10]
    args += ["--healthy", HEALTHY, "--healthy-limit", 6, "--cache", cache, "--outlier-pictures", 40]
    # Checkpoints beside the cache, not in the repository's var/: a killed run there would make
    # the next test run "resume" a finished epoch.
    args += ["--resume", cache / "checkpoints" / out.name]
    return [sys.executable, "-m", "ml.train", *map(str, args)]


@pytest.fixture(scope="session")
def tiny_model(datasets, tmp_path_factory):
    """A real 1-epoch training run on a few dozen images, through the command line."""
    out = tmp_path_factory.mktemp("models") / "brain-tumour" / "tiny"
    cache = tmp_path_factory.mktemp("cache")
    proc = subprocess.run(
        tiny_training_command(out, cache), cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout
