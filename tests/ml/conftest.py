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


@pytest.fixture(scope="session")
def tiny_model(datasets, tmp_path_factory):
    """A real 1-epoch training run on a few dozen images, through the command line."""
    out = tmp_path_factory.mktemp("models") / "brain-tumour" / "tiny"
    cache = tmp_path_factory.mktemp("cache")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml.train",
            "--data",
            str(TUMOUR_TRAINING),
            "--data",
            str(BR35H),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--limit",
            "10",
            "--healthy",
            str(HEALTHY),
            "--healthy-limit",
            "6",
            "--cache",
            str(cache),
            "--outlier-pictures",
            "40",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout
