"""JPEG and PNG uploads, pixels only: decoded completely within the pixel cap, then rebuilt from
their raw pixels so that no metadata block (EXIF, GPS, ICC, XMP, text chunks) survives; the
names of the blocks found go into the anonymisation report, never their values."""

import io

from django.conf import settings
from PIL import Image, ImageOps

from .refusals import UploadRejected


def decode_raster(data: bytes, pillow_format: str, label: str) -> Image.Image:
    max_pixels = settings.UPLOAD_MAX_PIXELS
    # No warnings.catch_warnings() here: it swaps process-wide state and web workers are threaded.
    # The header check below refuses an oversized image before Pillow's own bomb warning matters.
    try:
        with Image.open(io.BytesIO(data), formats=[pillow_format]) as probe:
            width, height = probe.size  # from the header; nothing decompressed yet
            if width * height > max_pixels:
                raise UploadRejected(
                    f"The image is {width}×{height} = {width * height:,} pixels; "
                    f"the limit is {max_pixels:,} pixels."
                )
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=[pillow_format])
        image.load()
    except Image.DecompressionBombError:
        raise UploadRejected(
            f"The image declares far more than {max_pixels:,} pixels (a decompression bomb "
            "or an image far larger than a scan); it was not decoded."
        ) from None
    except UploadRejected:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise UploadRejected(
            f"The {label} file could not be decoded completely (truncated or corrupt: {error})."
        ) from None
    return image


def header_pixels(uploaded_file, pillow_format: str) -> int:
    with Image.open(uploaded_file, formats=[pillow_format]) as probe:
        width, height = probe.size  # Image.open reads the header only
    return width * height


def pixels_only(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation, then rebuild the image from its raw pixels (no metadata at all)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/float greyscale: stretch to 8 bits so every later step sees one format.
        image = image.convert("F")
        low, high = image.getextrema()
        scale = 255.0 / (high - low) if high > low else 0.0
        image = image.point(lambda value: (value - low) * scale).convert("L")
    elif image.mode in ("1", "L", "LA", "La"):
        image = image.convert("L")
    else:
        image = image.convert("RGB")
    return Image.frombytes(image.mode, image.size, image.tobytes())


def metadata_found(image: Image.Image) -> list[str]:
    """Names of the metadata blocks the file carried (all dropped by the re-encoding)."""
    found = []
    if image.getexif():
        found.append("EXIF")
        if image.getexif().get_ifd(0x8825):
            found.append("EXIF GPS")
    for key in image.info:
        if key in ("icc_profile",):
            found.append("ICC profile")
        elif key in ("xmp", "XML:com.adobe.xmp"):
            found.append("XMP")
        elif key == "comment":
            found.append("comment")
        elif key not in (
            "exif",
            "dpi",
            "jfif",
            "jfif_version",
            "jfif_unit",
            "jfif_density",
            "progressive",
            "progression",
            "adobe",
            "adobe_transform",
            "gamma",
            "transparency",
            "interlace",
        ):
            found.append("text chunk")
    return sorted(set(found))
