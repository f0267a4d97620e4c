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
def _tiny_runs(datasets, tmp_path_factory):
    """Two identical tiny training runs started together: the session's tiny model and its twin,
    which tests/ml/test_train.py compares it with (the seed makes a run repeatable). Most of a
    run this small is one thread tracing graphs, so on two cores the pair takes about as long as
    one. Each has its own cache and checkpoints; output goes to files, not pipes, so neither
    can stall on a full pipe while the other is waited for."""
    runs = {}
    for name in ("tiny", "twin"):
        out = tmp_path_factory.mktemp(f"models-{name}") / "brain-tumour" / name
        cache = tmp_path_factory.mktemp(f"cache-{name}")
        logs = (open(cache / "stdout.txt", "w+"), open(cache / "stderr.txt", "w+"))  # noqa: SIM115
        proc = subprocess.Popen(
            tiny_training_command(out, cache), cwd=REPO_ROOT, stdout=logs[0], stderr=logs[1], text=True
        )
        runs[name] = (out, proc, logs)
    yield runs
    for _, proc, logs in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for log in logs:
            log.close()


def _finished(run) -> tuple[Path, str]:
    out, proc, (stdout, stderr) = run
    proc.wait(timeout=600)
    stdout.seek(0)
    stderr.seek(0)
    assert proc.returncode == 0, stderr.read()[-3000:]
    return out, stdout.read()


@pytest.fixture(scope="session")
def tiny_model(_tiny_runs):
    """A real 1-epoch training run on a few dozen images, through the command line."""
    return _finished(_tiny_runs["tiny"])


@pytest.fixture(scope="session")
def tiny_model_twin(_tiny_runs):
    """The same command run again, at the same time: it must give the same model."""
    return _finished(_tiny_runs["twin"])
