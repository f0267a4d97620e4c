"""Text burnt into a scan's pixels (a hospital's or patient's name on a CT slice), found by OCR.

Re-encoding drops metadata, not pixels. Every uploaded picture whose header does not rule text out
is read by Debian's tesseract (through pytesseract) before it is stored; a picture that shows
words is held for a data steward, as a DICOM slice whose header declares burned-in annotation is.
Only counts leave this module, never the text read: it may be a patient's name.
"""

import io
import os
import re
from dataclasses import dataclass, replace
from time import monotonic

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps

from . import deidentification

# Tesseract splits one picture over all cores through OpenMP; a web server checks many uploads at
# once, and on small pictures the threads cost more than they save.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

# Overlay text on small exports is 5-8 px high; tesseract reads it from about 15 px. Larger
# pictures are read as they are (their text is large enough) so that the cost stays bounded.
TARGET_SIDE = 600
MAX_UPSCALE = 3
MIN_UPSCALE = 1.5  # below it the text is large enough, and more pixels only cost time
# Tesseract misreads text that touches the picture's edge, where scanner overlays sit.
PADDING = 16
# A word counts when tesseract is this sure of it, it is mostly letters or digits, at least
# MIN_CHARACTERS of them, and no taller than a text line can be (anatomy read as a letter is).
# Held: MIN_WORDS such words (an overlay has many), or one long word read with high confidence (a
# name). Tuned with `manage.py measure_burned_in`: anatomy and noise read as text give short
# words below 80, scattered one or two to a picture.
MIN_CONFIDENCE = 60
MIN_CHARACTERS = 3
MAX_WORD_HEIGHT = 0.1  # of the picture's height
MIN_WORDS = 3
LONG_WORD_CHARACTERS = 5
LONG_WORD_CONFIDENCE = 80
WORDLIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:/,()\-]*")

HEADER_REASON = "the DICOM header declares burned-in annotation"
UNAVAILABLE_REASON = "text check unavailable"


@dataclass(frozen=True)
class TextCheck:
    held: bool
    reason: str  # for the page, the API and the steward: counts only, never the text
    words: int  # words that look like text; -1 when the check could not run
    seconds: float


def _ocr_input(grey: Image.Image) -> Image.Image:
    scale = min(MAX_UPSCALE, TARGET_SIDE / max(grey.size))
    if scale >= MIN_UPSCALE:
        grey = grey.resize((round(grey.width * scale), round(grey.height * scale)), Image.LANCZOS)
    # Scanner overlays are light on a dark background; tesseract reads dark text on light best.
    if np.asarray(grey).mean() < 128:
        grey = ImageOps.invert(grey)
    return ImageOps.expand(grey, PADDING * max(1, round(scale)), fill=255)


def _is_word(text: str, confidence: float, box_height: int, height: int, characters: int) -> bool:
    alnum = sum(ch.isalnum() for ch in text)
    return bool(
        confidence >= MIN_CONFIDENCE
        and alnum >= characters
        and alnum >= 0.6 * len(text)
        and WORDLIKE.fullmatch(text)
        and box_height <= MAX_WORD_HEIGHT * height
    )


def count_words(data: dict, height: int) -> tuple[int, int]:
    """(words that look like text, long words read with high confidence) in tesseract's
    ``image_to_data`` output for a picture ``height`` pixels high."""
    words = long_words = 0
    for text, confidence, box_height in zip(data["text"], data["conf"], data["height"], strict=True):
        text, confidence = text.strip(), float(confidence)
        if _is_word(text, confidence, box_height, height, MIN_CHARACTERS):
            words += 1
            if confidence >= LONG_WORD_CONFIDENCE and _is_word(
                text, confidence, box_height, height, LONG_WORD_CHARACTERS
            ):
                long_words += 1
    return words, long_words


def check(picture: Image.Image, timeout: float | None = None) -> TextCheck:
    """Read ``picture`` (the pixels as stored) and say whether it must be held for a steward.

    Fails safe: when tesseract is missing, fails or runs past ``timeout`` seconds
    (settings.UPLOAD_TEXT_CHECK_SECONDS), the picture is held.
    """
    import pytesseract

    timeout = settings.UPLOAD_TEXT_CHECK_SECONDS if timeout is None else timeout
    started = monotonic()
    ocr_input = _ocr_input(ImageOps.grayscale(picture))
    try:
        data = pytesseract.image_to_data(
            ocr_input, config="--psm 11", output_type=pytesseract.Output.DICT, timeout=timeout
        )
    except pytesseract.TesseractNotFoundError:
        return TextCheck(
            True, f"{UNAVAILABLE_REASON} (tesseract is not installed)", -1, monotonic() - started
        )
    except RuntimeError as error:  # pytesseract's timeout, and TesseractError
        why = "it took too long" if "timeout" in str(error).lower() else "tesseract failed"
        return TextCheck(True, f"{UNAVAILABLE_REASON} ({why})", -1, monotonic() - started)
    words, long_words = count_words(data, ocr_input.height)
    seconds = monotonic() - started
    if words >= MIN_WORDS or long_words:
        plural = "word" if words == 1 else "words"
        return TextCheck(True, f"text found in the picture ({words} {plural})", words, seconds)
    return TextCheck(False, "", words, seconds)


def _stored_picture(image) -> Image.Image:
    if image.dicom is None:
        return Image.open(io.BytesIO(image.content))  # the re-encoded PNG, as stored
    from ml.preprocess import decode, dicom_pixels

    # As the case page shows it (cases.dicompreview): rescaled, windowed, 8-bit.
    grey, _ = decode(dicom_pixels(image.dicom))
    return Image.fromarray(grey)


def screen(image):
    """``image`` (an uploads.CleanImage) as it must be stored: held, with its reason, when its
    DICOM header declares burned-in annotation or its pixels show words.

    A DICOM header that says BurnedInAnnotation NO is taken at its word; one that says nothing is
    not. The anonymisation report gains the count of words found, never the words.
    """
    if image.held:
        return replace(image, hold_reason=HEADER_REASON)
    if image.dicom is not None and not deidentification.burned_in_annotation(image.dicom):
        return replace(image, report={**image.report, "text_check": "not read: BurnedInAnnotation NO"})
    result = check(_stored_picture(image))
    check_ms = round(result.seconds * 1000, 1)
    report = {**image.report, "text_check": {"words": result.words, "held": result.held, "ms": check_ms}}
    return replace(image, held=result.held, hold_reason=result.reason, report=report)
