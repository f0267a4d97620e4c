"""The out-of-distribution gate's image checks, without a model: what each statistic
measures on real slices (blurred and shrunk ones too) and on pictures that are not MRI."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ml import fit_gate, gate
from ml.preprocess import decode

# Thresholds as ml.fit_gate.fit writes them, with the values fitted for models on this data.
THRESHOLDS = {
    "max_colourfulness": 8.6,
    "max_border_brightness": 100.0,
    "min_contrast": 12.0,
    "min_foreground": 0.18,
    "max_foreground": 1.0,
    "min_structure": 0.17,
    "min_head_blob": 0.12,
}


def _stats(array) -> gate.ImageStats:
    grey, colour = decode(np.asarray(array))
    return gate.image_stats(grey, colour)


def _real_slices(datasets, n=12):
    folders = [
        datasets / "brain-tumor-mri" / "Training" / "glioma",
        datasets / "brain-tumor-mri" / "Training" / "notumor",
        datasets / "br35h" / "yes",
        datasets / "alzheimer-mri" / "train" / "NonDemented",
    ]
    return [path for folder in folders for path in sorted(folder.glob("*.jpg"))[:n]]


def _radial_gradient(side=256):
    yy, xx = np.mgrid[-1 : 1 : side * 1j, -1 : 1 : side * 1j]
    return (np.clip(1 - np.hypot(xx, yy), 0, 1) * 255).astype(np.uint8)


def _star_field(side=512, stars=150, seed=0):
    """Faint noise with small bright points scattered over it, like a deep-field photograph."""
    rng = np.random.default_rng(seed)
    field = rng.normal(20, 6, (side, side))
    for y, x in rng.integers(4, side - 4, (stars, 2)):
        field[y - 3 : y + 4, x - 3 : x + 4] += rng.uniform(120, 225)
    return np.clip(field, 0, 255).astype(np.uint8)


def test_real_slices_pass_the_image_checks_even_blurred_or_shrunk(datasets):
    for path in _real_slices(datasets):
        grey = Image.fromarray(decode(path)[0])
        for variant in (grey, grey.filter(ImageFilter.GaussianBlur(3)), grey.resize((64, 64))):
            stats = _stats(variant)
            assert gate.image_reason(stats, THRESHOLDS) == "", (path.name, variant.size, stats)
            assert stats.structure > 0.3 and stats.head_blob > 0.2, (path.name, stats)


def test_smooth_shading_is_refused_for_lack_of_anatomy():
    ramp = np.tile(np.linspace(0, 255, 256, dtype=np.float32), (256, 1)).astype(np.uint8)
    for picture in (_radial_gradient(), ramp):
        stats = _stats(picture)
        assert stats.structure < 0.1
        assert gate.image_reason(stats, THRESHOLDS) == "smooth shading with no anatomy inside it"


def test_scattered_bright_points_are_refused_as_not_one_head():
    stats = _stats(_star_field())
    assert stats.head_blob < 0.05
    assert gate.image_reason(stats, THRESHOLDS) == "scattered bright points on a dark field, not one head"


def test_a_card_fitted_before_the_new_checks_skips_them():
    older = {k: v for k, v in THRESHOLDS.items() if k not in ("min_structure", "min_head_blob")}
    assert gate.image_reason(_stats(_radial_gradient()), older) == ""


def test_fit_sets_the_new_limits_below_what_training_images_show(datasets):
    stats = [_stats(Image.open(path)) for path in _real_slices(datasets, n=25)]
    thresholds, arrays = fit_gate.fit(stats, np.random.default_rng(0).normal(size=(len(stats), 8)))
    assert 0 < thresholds["min_structure"] < min(s.structure for s in stats)
    assert 0 < thresholds["min_head_blob"] < min(s.head_blob for s in stats)
    assert arrays["precision"].shape == (8, 8)


@pytest.mark.parametrize("name", ["structure", "head_blob"])
def test_new_statistics_are_reported_as_evidence(name):
    assert name in _stats(_radial_gradient()).as_dict()


def test_outlier_pictures_are_repeatable_grey_pictures_of_every_kind():
    from ml.outliers import GENERATORS, outlier_pictures

    first, again = outlier_pictures(20, seed=3), outlier_pictures(20, seed=3)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again, strict=True))
    assert {kind.removesuffix("_framed") for kind, _ in first} == set(GENERATORS)
    for _, picture in first:
        assert picture.dtype == np.uint8 and picture.ndim == 2 and min(picture.shape) >= 64
        assert picture.std() > 5  # a picture, not a blank


def _two_clusters(seed=0, n=400, dim=8):
    rng = np.random.default_rng(seed)
    slices = rng.normal(0, 1, (n, dim))
    others = rng.normal(0, 1, (n, dim)) + np.r_[3.0, np.zeros(dim - 1)]  # apart along one axis
    return slices, others


def test_outlier_exposure_refuses_the_other_side_and_keeps_the_slices(datasets):
    stats = [_stats(Image.open(path)) for path in _real_slices(datasets, n=25)]
    slices, others = _two_clusters(n=len(stats))
    thresholds, arrays = fit_gate.fit(stats, slices, outlier_features=others)
    assert thresholds["outlier_exposure"].startswith(f"{len(others)} generated non-MRI pictures")
    evidence = gate.feature_evidence(slices, arrays)
    refused = [bool(gate.feature_reason(ev, thresholds)) for ev in evidence]
    assert sum(refused) <= 0.01 * len(slices)  # the limit sits above the training slices
    # A picture as close to the slices' centre as they are, but far along the separating
    # direction: Mahalanobis distance alone would let it through.
    far_along = np.r_[4.5, np.zeros(slices.shape[1] - 1)][None]
    (ev,) = gate.feature_evidence(far_along, arrays)
    assert ev["feature_distance"] < thresholds["max_feature_distance"]
    assert gate.feature_reason(ev, thresholds).startswith("closer to pictures that are not brain MRI")
    # A CT model's gate names what it reads.
    assert gate.feature_reason(ev, thresholds, "CT").startswith("closer to pictures that are not brain CT")


def test_a_gate_fitted_without_outlier_exposure_skips_the_outlier_score(datasets):
    stats = [_stats(Image.open(path)) for path in _real_slices(datasets, n=25)]
    slices, _ = _two_clusters(n=len(stats))
    thresholds, arrays = fit_gate.fit(stats, slices)
    assert "max_outlier_score" not in thresholds and "outlier_weights" not in arrays
    (ev,) = gate.feature_evidence(slices[:1], arrays)
    assert set(ev) == {"feature_distance"} and gate.feature_reason(ev, thresholds) == ""
    # Evidence with a score but a card without its limit (fitted before outlier exposure).
    assert gate.feature_reason(ev | {"outlier_score": 99.0}, thresholds) == ""


def test_a_slice_framed_in_mid_grey_passes_the_image_checks(datasets):
    """Br35H has slices on a mid-grey background (border about 89 of 255): still MRI."""
    path = datasets / "br35h" / "yes" / "y201.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    stats = _stats(Image.open(path))
    assert 75 < stats.border_brightness <= THRESHOLDS["max_border_brightness"]
    assert gate.image_reason(stats, THRESHOLDS) == ""


def test_a_feature_constant_on_the_slices_gets_a_bounded_outlier_weight(datasets):
    """A feature that is always 0 on training slices but lit on generated pictures must not
    decide alone: a real slice that lights it slightly is still accepted."""
    stats = [_stats(Image.open(path)) for path in _real_slices(datasets, n=25)]
    slices, others = _two_clusters(n=len(stats))
    slices[:, -1] = 0.0
    others[:, -1] = 1.0
    thresholds, arrays = fit_gate.fit(stats, slices, outlier_features=others)
    slightly_lit = slices[:1].copy()
    slightly_lit[0, -1] = 0.05
    (ev,) = gate.feature_evidence(slightly_lit, arrays)
    assert gate.feature_reason(ev, thresholds) == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/model-dir"], "is not a model directory with a readable card"),
        (["--model", ".", "--outlier-pictures", "-5"], "expected 0 or more, got -5"),
    ],
)
def test_refitting_cli_refuses_bad_input_with_a_message(args, message):
    import subprocess
    import sys

    from tests.ml.conftest import REPO_ROOT

    proc = subprocess.run(
        [sys.executable, "-m", "ml.fit_gate", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
