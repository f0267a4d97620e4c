"""Fixtures for ml/: real images from ../shared and one tiny trained model per session."""

import subprocess
import sys
from pathlib import Path

import pytest

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


def tiny_training_command(out: Path, cache: Path) -> list[str]:
    """python -m ml.train for 1 epoch on a few dozen real images (10 per label, 6 healthy)."""
    args = ["--data", TUMOUR_TRAINING, "--data", BR35H, "--out", out, "--epochs", 1, "--limit", 10]
    args += ["--healthy", HEALTHY, "--healthy-limit", 6, "--cache", cache, "--outlier-pictures", 40]
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
