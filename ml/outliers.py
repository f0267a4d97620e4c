"""Pictures that are not brain MRI slices, for outlier exposure of the gate.

The out-of-distribution gate learns what an MRI slice looks like from the training images
alone; a picture that is "near enough" in the model's feature space (a grey microscope
field, say) can slip under a distance limit that real slices from other scanners need.
Showing the gate examples of the other side (Hendrycks et al., 2019, "outlier exposure")
gives it a direction to measure along, not only a distance.

The examples come from two photographs that ship with scikit-learn and from procedural
generators (fractal noise, shapes on a background, cellular textures, gratings), each
varied in scale, crop, contrast, blur and noise, some framed in an ellipse on a dark
background as a head would be. None of them is a picture of the test suite's non-MRI
corpus (scikit-image's samples, white noise, linear and radial gradients, rendered text,
a screenshot): that corpus stays a held-out check of the gate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage


def _photos() -> list[np.ndarray]:
    """scikit-learn's two sample photographs, greyscale as serving makes them."""
    from sklearn.datasets import load_sample_images

    from ml.preprocess import to_grey

    return [to_grey(np.asarray(img)).astype(np.float64) for img in load_sample_images().images]


def _stretch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale to a random intensity range and gamma; uint8."""
    lo, hi = np.percentile(x, [1, 99])
    x = np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1) ** rng.uniform(0.5, 2.0)
    floor = rng.uniform(0, 0.4)
    top = rng.uniform(max(floor + 0.3, 0.6), 1.0)
    return (255 * (floor + (top - floor) * x)).astype(np.uint8)


def _photo_crop(rng, side, photos) -> np.ndarray:
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape
    crop = int(rng.uniform(0.15, 1.0) * min(h, w))
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    patch = photo[y : y + crop, x : x + crop]
    if rng.random() < 0.3:
        patch = patch.max() - patch
    return _resize(_stretch(patch, rng), side)


def _fractal_noise(rng, side, photos=None) -> np.ndarray:
    beta = rng.uniform(1.2, 3.5)
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    amplitude = radius ** (-beta / 2)
    amplitude[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, amplitude.shape)
    field = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(side, side))
    return _stretch(field, rng)


def _shapes(rng, side, photos=None) -> np.ndarray:
    background = rng.choice(["flat", "noise", "fractal"])
    if background == "flat":
        canvas = np.full((side, side), rng.uniform(0, 160))
    elif background == "noise":
        noise = rng.normal(rng.uniform(20, 140), 25, (side, side))
        canvas = ndimage.gaussian_filter(noise, rng.uniform(0, 3))
    else:
        canvas = _fractal_noise(rng, side).astype(np.float64) * rng.uniform(0.3, 0.8)
    yy, xx = np.mgrid[:side, :side]
    for _ in range(rng.integers(1, 25)):
        cy, cx = rng.uniform(0, side, 2)
        r = rng.uniform(0.02, 0.25) * side
        value = rng.uniform(0, 255)
        kind = rng.integers(3)
        if kind == 0:
            inside = np.hypot(yy - cy, xx - cx) < r
        elif kind == 1:
            inside = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r * rng.uniform(0.3, 3))
        else:
            angle = rng.uniform(0, np.pi)
            u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
            v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
            inside = (u / r) ** 2 + (v / (r * rng.uniform(0.2, 1))) ** 2 < 1
        canvas[inside] = value
    canvas = ndimage.gaussian_filter(canvas, rng.uniform(0, 4))
    return np.clip(canvas + rng.normal(0, rng.uniform(0, 12), canvas.shape), 0, 255).astype(np.uint8)


def _cells(rng, side, photos=None) -> np.ndarray:
    """Voronoi-like cellular texture (tissue, foam, cracked paint)."""
    n = int(rng.integers(8, 200))
    points = rng.uniform(0, side, (n, 2))
    yy, xx = np.mgrid[:side, :side]
    grid = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float32)
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(points).query(grid, k=2)
    if rng.random() < 0.5:
        field = (dist[:, 1] - dist[:, 0]).reshape(side, side)  # bright cell walls or interiors
    else:
        field = rng.uniform(0, 1, n)[idx[:, 0]].reshape(side, side)  # patchwork of flat cells
    return _stretch(ndimage.gaussian_filter(field, rng.uniform(0, 2)), rng)


def _grating(rng, side, photos=None) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side] / side
    angle = rng.uniform(0, np.pi)
    freq = rng.uniform(2, 40)
    warp = _fractal_noise(rng, side).astype(np.float64) / 255 * rng.uniform(0, 3)
    field = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + warp)
    if rng.random() < 0.5:
        field = np.sign(field)
    return _stretch(field + rng.normal(0, rng.uniform(0, 0.3), field.shape), rng)


GENERATORS: dict[str, Callable] = {
    "photo_crop": _photo_crop,
    "fractal_noise": _fractal_noise,
    "shapes": _shapes,
    "cells": _cells,
    "grating": _grating,
}


def _resize(img: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.BILINEAR))


def _in_head_frame(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The picture inside an ellipse on a dark background, framed as a head slice is."""
    side = img.shape[0]
    yy, xx = np.mgrid[:side, :side] / side - 0.5
    ry, rx = rng.uniform(0.3, 0.48, 2)
    inside = (yy / ry) ** 2 + (xx / rx) ** 2 < 1
    out = np.where(inside, img, rng.uniform(0, 8, img.shape)).astype(np.uint8)
    return out


def outlier_pictures(n: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """``n`` (kind, greyscale uint8 picture) pairs, from every generator in turn."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    names = list(GENERATORS)
    pictures = []
    for i in range(n):
        name = names[i % len(names)]
        side = int(rng.integers(128, 320))
        img = GENERATORS[name](rng, side, photos)
        if rng.random() < 0.35:
            img = _in_head_frame(img, rng)
            name += "_framed"
        if rng.random() < 0.5:  # non-square pictures: crop rows or columns
            keep = int(side * rng.uniform(0.6, 1.0))
            img = img[:keep] if rng.random() < 0.5 else img[:, :keep]
        pictures.append((name, np.ascontiguousarray(img)))
    return pictures
