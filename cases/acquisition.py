"""How a DICOM slice was acquired, kept at upload for the viewer: an explicit allow-list of
technical attributes read from the de-identified dataset, and the slice's own window.

Only attributes that describe the acquisition are kept, never one the de-identification profile
(``deid.basic-profile``) removes, blanks or replaces, with one exception: SeriesDescription, which
the profile removes and the Clean Descriptors Option puts back only when every word of it is a
sequence, orientation or contrast term (cases.deidentification.clean_series_description, checked
again here). ProtocolName stays removed (free text a site may fill with a name); the technical
attributes (ScanningSequence, SequenceVariant, TR/TE/TI) describe the sequence too. Equipment
(Manufacturer, model names) is left out: with a date it narrows down the site.
"""

import numpy as np
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from .deidentification import clean_series_description

# Keyword -> label shown beside the image. Code-strings and numbers only (CS, DS, IS, SH), and the
# cleaned SeriesDescription (LO).
ALLOWED_ATTRIBUTES = {
    "Modality": "Modality",
    "SeriesDescription": "Series description",
    "BodyPartExamined": "Body part",
    "MRAcquisitionType": "Acquisition",
    "ScanningSequence": "Scanning sequence",
    "SequenceVariant": "Sequence variant",
    "SequenceName": "Sequence name",
    "RepetitionTime": "TR (ms)",
    "EchoTime": "TE (ms)",
    "InversionTime": "TI (ms)",
    "FlipAngle": "Flip angle (°)",
    "MagneticFieldStrength": "Field strength (T)",
    "SliceThickness": "Slice thickness (mm)",
    "SpacingBetweenSlices": "Slice spacing (mm)",
    "PixelSpacing": "Pixel spacing (mm)",
    "ImageOrientationPatient": "Orientation",
    "PhotometricInterpretation": "Photometric",
    "BitsStored": "Bits stored",
}
# Removed by the profile, kept only in the form the Clean Descriptors Option wrote back.
RETAINED_WHEN_CLEAN = {"SeriesDescription": clean_series_description}
# Short free values only: a longer one is not a technical code.
MAX_VALUE_LENGTH = 64


def _text(value) -> str:
    if isinstance(value, (MultiValue, list, tuple)):
        return ", ".join(_number(v) for v in value)
    return _number(value)


def _number(value) -> str:
    if not isinstance(value, (int, float)):  # pydicom's DS and IS values are floats and ints
        return str(value).strip()
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.4g}"


def attributes(dataset) -> dict[str, str]:
    """The allow-listed attributes the (de-identified) dataset holds, as short display strings."""
    found = {}
    for keyword in ALLOWED_ATTRIBUTES:
        element = dataset.get(keyword)
        if element in (None, ""):
            continue
        text = _text(element)
        if keyword in RETAINED_WHEN_CLEAN:
            text = RETAINED_WHEN_CLEAN[keyword](text)
        if text and len(text) <= MAX_VALUE_LENGTH:
            found[keyword] = text
    return found


def _first(value) -> float:
    # Several windows may be offered; the first is the one the render applies.
    return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)


def render_window(dataset) -> dict | None:
    """The slice's own window (WindowCenter/WindowWidth, modality units) and where it falls on the
    8-bit preview, which is rendered as ml.preprocess.dicom_pixels then ml.preprocess.decode do it:
    modality LUT, this window, a 0.5-99.5 percentile stretch to 0-255, MONOCHROME1 inverted.

    The preview already has the window applied, so in 8-bit terms it is (nearly) the full range;
    the viewer offers it as the "DICOM" preset and narrows from there. None without a window,
    or with a VOI LUT table instead (not a centre and width).
    """
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset or "VOILUTSequence" in dataset:
        return None
    try:
        center, width = _first(dataset.WindowCenter), _first(dataset.WindowWidth)
        pixels = apply_modality_lut(dataset.pixel_array, dataset)
        windowed = np.asarray(apply_voi_lut(pixels, dataset, prefer_lut=True), dtype=np.float64)
        edges = np.asarray(
            apply_voi_lut(np.array([center - width / 2, center + width / 2]), dataset, prefer_lut=True),
            dtype=np.float64,
        )
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    lo, hi = np.percentile(windowed, [0.5, 99.5])
    if hi <= lo or width <= 0:
        return None
    low, high = ((edges - lo) / (hi - lo) * 255).tolist()
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        low, high = 255 - high, 255 - low
    return {
        "center": _number(center),
        "width": _number(width),
        "preview_center": round((low + high) / 2, 1),
        "preview_width": round(max(1.0, high - low), 1),
    }


def describe(dataset) -> dict:
    """What Scan.acquisition stores for a DICOM slice (after de-identification)."""
    described = {"attributes": attributes(dataset)}
    window = render_window(dataset)
    if window:
        described["window"] = window
    return described


def estimated_weighting(stored: dict) -> str | None:
    """The contrast a spin-echo or inversion-recovery slice most likely has, from TR/TE/TI (ms):
    shown beside the series description, or instead of it where de-identification removed it (not
    clean: cases.deidentification.clean_series_description). Textbook cut-offs
    at 1.5-3 T; None where they do not decide (gradient echo, intermediate timings)."""
    try:
        tr, te = float(stored["RepetitionTime"]), float(stored["EchoTime"])
    except (KeyError, ValueError):
        return None
    ti = float(stored.get("InversionTime") or 0)
    sequence = stored.get("ScanningSequence", "")
    if "IR" in sequence or ti:
        if ti >= 1500 and tr >= 4000:
            return "FLAIR (fluid-suppressed T2)"
        if 100 <= ti <= 250:
            return "STIR (fat-suppressed)"
        if 500 <= ti <= 1200 and te < 30:
            return "T1 (inversion recovery)"
        return None
    if "SE" not in sequence:
        return None
    if tr < 800 and te < 30:
        return "T1"
    if tr >= 2000 and te >= 80:
        return "T2"
    if tr >= 2000 and te < 40:
        return "Proton density"
    return None
