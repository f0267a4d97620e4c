"""The one preprocessing function shared by training, evaluation and serving.

decode (any common format or a DICOM slice, greyscale or RGB, any size) -> 8-bit greyscale ->
crop to the head -> pad to a square -> resize -> float32 in [0, 1], shape (SIZE, SIZE, 1).
Per-image standardisation happens inside the model (``ml.model.PerImageStandardization``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Bump whenever the output of ``preprocess`` changes; it is recorded in the model card and
# a model refuses to serve through a different version.
PREPROCESS_VERSION = "2"
SIZE = 128

# Pixels darker than this fraction of the bright end count as background (air, borders).
_BACKGROUND_FRACTION = 0.08
# A row/column belongs to the head when this fraction of it is foreground: burnt-in
# letters and scanner text are too thin to pass.
_MIN_FOREGROUND = 0.02
_MARGIN = 0.03


# What pydicom raises for a truncated or malformed slice, besides InvalidDicomError.
_DICOM_ERRORS = (
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    OSError,
    NotImplementedError,
    RuntimeError,
)


class ImageDecodeError(ValueError):
    """The input is not an image we can read."""


def to_grey(image) -> np.ndarray:
    """Decode ``image`` (path, bytes, file object, PIL image or array) to a 2-D uint8 array.

    RGB is converted with ITU-R 601 luma in integer arithmetic, so a greyscale picture and
    its RGB copy give exactly the same array.
    """
    return decode(image)[0]


def is_dicom(head: bytes) -> bool:
    """A DICOM Part 10 file, by content: a 128-byte preamble, then ``DICM``."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def dicom_pixels(dicom) -> np.ndarray:
    """A DICOM slice's pixels (a read dataset, bytes, path or file object) as ``decode`` takes them: float64,
    rescaled, windowed and upright.

    Rescale slope/intercept (modality LUT), then the window or VOI LUT in the header;
    MONOCHROME1 is inverted. The worker, ml.train and ml.evaluate all read DICOM here.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if isinstance(dicom, pydicom.Dataset):
        dataset = dicom  # already read (the upload path): not written out and parsed again
    else:
        if isinstance(dicom, (bytes, bytearray, memoryview)):
            dicom = io.BytesIO(bytes(dicom))
        dataset = pydicom.dcmread(dicom)
    pixels = apply_modality_lut(dataset.pixel_array, dataset)
    if "WindowCenter" in dataset or "VOILUTSequence" in dataset:
        pixels = apply_voi_lut(pixels, dataset, prefer_lut=True)
    pixels = np.asarray(pixels, dtype=np.float64)
    if dataset.PhotometricInterpretation == "MONOCHROME1":
        # MONOCHROME1 shows low values as white: invert so tissue looks as in MONOCHROME2.
        pixels = pixels.max() + pixels.min() - pixels
    return pixels


def _dicom_head(image) -> bytes:
    """The first 132 bytes of ``image`` when it is bytes, a path or a seekable file; else b""."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image[:132])
    if isinstance(image, (str, Path)):
        try:
            with open(image, "rb") as file:
                return file.read(132)
        except OSError:
            return b""  # PIL reports the unreadable path
    if hasattr(image, "read") and hasattr(image, "seek"):
        start = image.tell()
        head = image.read(132)
        image.seek(start)
        return head if isinstance(head, bytes) else b""
    return b""


def decode(image) -> tuple[np.ndarray, float]:
    """(greyscale uint8 array, colourfulness): the mean channel spread of a colour
    picture on the 0-255 scale (0 for greyscale). MRI slices are grey; photos are not.
    A DICOM slice (recognised by content, not by name) goes through ``dicom_pixels``."""
    if isinstance(image, np.ndarray):
        return _array_to_grey(image), _colourfulness(image)
    if not isinstance(image, Image.Image) and is_dicom(_dicom_head(image)):
        from pydicom.errors import InvalidDicomError

        try:
            pixels = dicom_pixels(image)
        except (InvalidDicomError, *_DICOM_ERRORS) as exc:
            # The type only: pydicom's messages may quote header values (a patient's name).
            raise ImageDecodeError(f"cannot decode DICOM slice ({type(exc).__name__})") from None
        return _array_to_grey(pixels), _colourfulness(pixels)
    if isinstance(image, Image.Image):
        pil = image
    else:
        try:
            if isinstance(image, (bytes, bytearray, memoryview)):
                pil = Image.open(io.BytesIO(bytes(image)))
            elif isinstance(image, (str, Path)):
                pil = Image.open(image)
            else:
                pil = Image.open(image)
            pil.load()
        except (OSError, Image.DecompressionBombError, SyntaxError) as exc:
            raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    pil = ImageOps.exif_transpose(pil) or pil
    if pil.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return _array_to_grey(np.asarray(pil)), 0.0
    if pil.mode in ("RGBA", "LA", "P", "PA", "CMYK", "YCbCr", "1"):
        pil = pil.convert("RGB")
    colour = 0.0
    if pil.mode == "RGB":
        colour = _colourfulness(np.asarray(pil))
    if pil.mode != "L":
        pil = pil.convert("L")
    return np.asarray(pil, dtype=np.uint8), colour


def _colourfulness(arr: np.ndarray) -> float:
    if arr.ndim != 3 or arr.shape[-1] < 3:
        return 0.0
    rgb = arr[..., :3].astype(np.int16)
    if rgb.size > 3 * 512 * 512:  # a strided sample is plenty
        step = int(np.ceil(np.sqrt(rgb.size / (3 * 512 * 512))))
        rgb = rgb[::step, ::step]
    spread = (
        np.abs(rgb[..., 0] - rgb[..., 1])
        + np.abs(rgb[..., 1] - rgb[..., 2])
        + np.abs(rgb[..., 2] - rgb[..., 0])
    )
    return float(spread.mean() / 3.0)


def _array_to_grey(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3].astype(np.float64)
        if arr.dtype == np.uint8:
            r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
            return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
        arr = rgb @ np.array([0.299, 0.587, 0.114])
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ImageDecodeError(f"expected a 2-D image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    # 16-bit or float data (DICOM pixels, TIFF): stretch the 0.5-99.5 percentile window.
    arr = arr.astype(np.float64)
    lo, hi = np.percentile(arr, [0.5, 99.5])
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return (np.clip((arr - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)


def foreground_mask(grey: np.ndarray) -> np.ndarray:
    """Pixels brighter than the background: above 8% of the 99th percentile (at least 10)."""
    bright = float(np.percentile(grey, 99))
    return grey > max(10.0, _BACKGROUND_FRACTION * bright)


def head_box(grey: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (top, bottom, left, right) of the head, empty borders dropped."""
    h, w = grey.shape
    mask = foreground_mask(grey)
    rows = np.flatnonzero(mask.mean(axis=1) > _MIN_FOREGROUND)
    cols = np.flatnonzero(mask.mean(axis=0) > _MIN_FOREGROUND)
    if rows.size == 0 or cols.size == 0:
        return 0, h, 0, w
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (bottom - top) < 0.2 * h or (right - left) < 0.2 * w:
        return 0, h, 0, w  # nothing head-like: keep the whole picture
    mh, mw = int(_MARGIN * (bottom - top)), int(_MARGIN * (right - left))
    return max(0, top - mh), min(h, bottom + mh), max(0, left - mw), min(w, right + mw)


def crop_square(grey: np.ndarray) -> np.ndarray:
    """Crop to the head and pad the shorter side with zeros to a centred square."""
    top, bottom, left, right = head_box(grey)
    crop = grey[top:bottom, left:right]
    h, w = crop.shape
    side = max(h, w)
    out = np.zeros((side, side), dtype=np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = crop
    return out


def preprocess_grey(grey: np.ndarray, size: int = SIZE) -> np.ndarray:
    square = crop_square(grey)
    resized = Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return (np.asarray(resized, dtype=np.float32) / 255.0)[..., None]


def preprocess(image, size: int = SIZE) -> np.ndarray:
    """Model input for one image: float32 array (size, size, 1) in [0, 1]."""
    return preprocess_grey(to_grey(image), size)


def skull_strip(grey: np.ndarray, fraction: float = 0.07) -> np.ndarray:
    """``grey`` (uint8) with everything outside the head mask eroded by ``fraction`` of the
    head's larger side set to 0: scalp and skull gone, as in a stripped series."""
    from scipy import ndimage

    mask = ndimage.binary_fill_holes(ndimage.binary_closing(foreground_mask(grey), iterations=3))
    labelled, n = ndimage.label(mask)
    if n == 0:
        return grey
    sizes = ndimage.sum(mask, labelled, range(1, n + 1))
    mask = labelled == (1 + int(np.argmax(sizes)))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    eroded = ndimage.distance_transform_edt(mask) > max(1.0, fraction * extent)
    if eroded.sum() < 0.05 * mask.sum():
        return grey  # nothing sensible left: keep the slice
    return np.where(eroded, grey, 0).astype(np.uint8)
