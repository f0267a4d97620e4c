"""Training augmentation: shapes, ranges, and a skull strip that looks like a real one."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ml.augment import _head_mask, _skull_strip, augment, recrop  # noqa: E402

SIZE = 64


def _head(size=SIZE, brain=20, skull=22):
    """A synthetic axial slice: a bright skull ring around a mid-grey brain, dark outside."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    image = np.where(r <= skull, 0.9, 0.0)
    image = np.where(r <= brain, 0.4, image)
    return image.astype(np.float32)[:, :, None]


def test_recrop_makes_the_content_fill_the_frame():
    small = np.zeros((SIZE, SIZE, 1), np.float32)
    small[24:40, 24:40] = 1.0  # a 16 px square in the middle
    out = recrop(tf.constant(small), SIZE).numpy()
    rows = np.flatnonzero(out[:, :, 0].max(axis=1) > 0.5)
    assert out.shape == (SIZE, SIZE, 1)
    assert rows[-1] - rows[0] + 1 >= 0.9 * SIZE  # with a 3% margin each side


def test_skull_strip_removes_the_rim_and_enlarges_the_brain():
    head = tf.constant(_head())
    tf.random.set_seed(0)
    stripped = _skull_strip(head, _head_mask(head), SIZE).numpy()[:, :, 0]
    assert stripped.max() < 0.6  # the bright skull ring is gone
    rows = np.flatnonzero(stripped.max(axis=1) > 0.2)
    assert rows[-1] - rows[0] + 1 > 2 * 20 + 8  # re-cropped: wider than the original 41 px brain


def test_augment_keeps_shape_range_and_varies():
    head = tf.constant(_head())
    tf.random.set_seed(1)
    outs = [augment(head, SIZE).numpy() for _ in range(8)]
    for out in outs:
        assert out.shape == (SIZE, SIZE, 1) and out.min() >= 0.0 and out.max() <= 1.0
        assert np.isfinite(out).all()
    assert len({out.tobytes() for out in outs}) == 8


def test_the_registered_profile_only_flips_shifts_and_nudges_intensity():
    from ml.augment import PROFILES, augment_registered

    assert PROFILES["registered"] is augment_registered
    head = _head()
    tf.random.set_seed(2)
    outs = [augment_registered(tf.constant(head), SIZE).numpy() for _ in range(8)]
    for out in outs:
        assert out.shape == (SIZE, SIZE, 1) and out.min() >= 0.0 and out.max() <= 1.0
        # No zoom, no stripping, no inversion: the head keeps its size and its bright skull.
        assert abs((out > 0.2).sum() - (head > 0.2).sum()) <= 0.05 * (head > 0.2).sum()
        assert out.max() > 0.8
    assert len({out.tobytes() for out in outs}) == 8


def test_the_ct_profile_keeps_the_skull_and_never_inverts():
    from ml.augment import PROFILES, augment_ct
    from ml.recipe import AUGMENTATION_PROFILES

    assert PROFILES["ct"] is augment_ct and set(PROFILES) == set(AUGMENTATION_PROFILES)
    head = _head()
    tf.random.set_seed(3)
    outs = [augment_ct(tf.constant(head), SIZE).numpy() for _ in range(12)]
    assert len({out.tobytes() for out in outs}) == 12
    r = np.hypot(*(np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2))
    for out in outs:
        assert out.shape == (SIZE, SIZE, 1) and out.min() >= 0.0 and out.max() <= 1.0
        # Rotated, zoomed and shifted, but still a bright skull around a darker brain, never the
        # inverse (an MRI sequence's bright CSF) and never stripped: the centre stays darker
        # than the brightest ring.
        centre = out[:, :, 0][r < 6].mean()
        assert out.max() > centre + 0.2
