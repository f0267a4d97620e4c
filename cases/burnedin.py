"""Text burnt into a scan's pixels (a hospital's or patient's name on a CT slice), found by OCR.

Re-encoding drops metadata, not pixels. An upload stores its scans as CHECKING (cases.uploads:
reading a 50-slice series takes longer than a request may); the worker's first step reads each
(``screen_stored``): a DICOM header that says BurnedInAnnotation YES holds it unread, NO is taken
at its word, and every other picture is read by Debian's tesseract (through pytesseract). A scan
that shows words is held for a data steward; the others go on to classification (``settle``).
Only counts leave this module, never the text read: it may be a patient's name.
"""

import io
import os
import re
from dataclasses import dataclass
from time import monotonic

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageOps

from . import deidentification
from .scans import AnonymisationReport, Scan

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


def gave_up_reason(attempts: int) -> str:
    """A scan whose check never finished (it killed its worker each time) is held, never passed."""
    return f"{UNAVAILABLE_REASON} (gave up after {attempts} attempts)"


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


@dataclass(frozen=True)
class Screening:
    """The worker's verdict on one stored scan, and what the anonymisation report keeps of it."""

    held: bool
    reason: str
    report: dict | str  # the report entry's "text_check": counts and milliseconds, or why not read


def screen_stored(data: bytes, is_dicom: bool) -> Screening:
    """Read a stored (de-identified) scan for burned-in text, as the case page would show it.

    A DICOM header that says BurnedInAnnotation YES holds it unread; one that says NO is taken at
    its word; one that says nothing (or something else) is not, and its pixels are read.
    """
    if is_dicom:
        import pydicom

        from ml.preprocess import decode, dicom_pixels

        dataset = pydicom.dcmread(io.BytesIO(data))
        if deidentification.declares_burned_in_text(dataset):
            return Screening(True, HEADER_REASON, "not read: BurnedInAnnotation YES")
        if not deidentification.burned_in_annotation(dataset):
            return Screening(False, "", "not read: BurnedInAnnotation NO")
        # As the case page shows it (cases.dicompreview): rescaled, windowed, 8-bit.
        grey, _ = decode(dicom_pixels(dataset))
        picture = Image.fromarray(grey)
    else:
        picture = Image.open(io.BytesIO(data))  # the re-encoded PNG, as stored
    result = check(picture)
    report = {"words": result.words, "held": result.held, "ms": round(result.seconds * 1000, 1)}
    return Screening(result.held, result.reason, report)


def settle(scan_id: int, claim_token: str, screening: Screening) -> bool:
    """Record the verdict on a scan this worker attempt claimed while CHECKING: held for a steward,
    or queued for classification (either way its attempts count again from 0: the check's were the
    check's, and a steward's release starts classification afresh).
    False, recording nothing, when the claim is no longer this attempt's (the sweep handed it on,
    or it was retracted or erased)."""
    now = timezone.now()
    with transaction.atomic():
        # The sweep or a retraction may change the scan meanwhile: only the row still ours moves.
        mine = Scan.objects.filter(
            pk=scan_id,
            status=Scan.Status.CHECKING,
            claim_token=claim_token,
            retracted_at=None,
            erased_at=None,
        )
        if screening.held:
            moved = mine.update(
                status=Scan.Status.HELD, hold_reason=screening.reason[:200], status_changed_at=now, attempts=0
            )
        else:
            moved = mine.update(status=Scan.Status.QUEUED, status_changed_at=now, attempts=0)
        if moved:
            _report(scan_id, screening)
    return bool(moved)


def _report(scan_id: int, screening: Screening) -> None:
    report_id = Scan.objects.filter(pk=scan_id).values_list("anonymisation_report", flat=True).first()
    if report_id is None:
        return
    # The scans of one upload finish their checks together: one read-modify-write at a time.
    report = AnonymisationReport.objects.select_for_update().get(pk=report_id)
    for entry in report.files:
        if entry.get("scan") == scan_id:
            entry.update(held=screening.held, text_check=screening.report)
    report.save(update_fields=["files"])
