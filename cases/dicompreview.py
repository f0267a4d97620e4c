"""A stored DICOM slice rendered as an 8-bit PNG for the case page and the API."""

import io

from PIL import Image

from ml.preprocess import decode


def preview_png(data: bytes) -> bytes:
    """An 8-bit PNG of the stored slice (through the decoding the model's input takes)."""
    grey, _ = decode(data)
    out = io.BytesIO()
    Image.fromarray(grey).save(out, format="PNG")
    return out.getvalue()
