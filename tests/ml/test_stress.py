"""ml.stress: a simulated skull strip at the image's own resolution, and the command's JSON."""

import json
import subprocess
import sys

import numpy as np

from ml.preprocess import skull_strip
from tests.ml.conftest import REPO_ROOT


def _slice(size=200):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    grey = np.where(r <= 80, 230, 0)  # skull and scalp
    grey = np.where(r <= 70, 120, grey)  # brain (the rim is 10 px, the strip 11)
    grey = np.where(r <= 10, 20, grey)  # a dark cyst inside: still head
    return grey.astype(np.uint8)


def test_skull_strip_blackens_the_rim_and_keeps_the_inside():
    grey = _slice()
    out = skull_strip(grey, fraction=0.07)
    assert out.dtype == np.uint8 and out.shape == grey.shape
    assert out.max() == 120  # no skull left
    assert out[100, 100] == 20 and out[100, 60] == 120  # cyst and brain untouched


def test_skull_strip_leaves_a_blank_picture_alone():
    blank = np.zeros((50, 50), np.uint8)
    assert np.array_equal(skull_strip(blank), blank)


def test_stress_reports_original_and_stripped_figures(tiny_model, datasets, tmp_path):
    out = tmp_path / "stress.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml.stress",
            "--model",
            str(tiny_model[0]),
            "--data",
            str(datasets / "brain-tumor-mri" / "Training"),
            "--limit",
            "12",
            "--json",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["n"] == 12
    for key in ("original", "skull_stripped"):
        assert set(result[key]) == {"tumour_recall", "tumour_specificity", "accuracy_4class"}
