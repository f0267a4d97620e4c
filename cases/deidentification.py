"""De-identification of DICOM slices (PS3.15 basic profile via a deid recipe) and what it removed.

A checked slice (cases/dicomread.py) is stripped of identifiers by deid with the recipe in
``deid.basic-profile``, its UIDs remapped per case, and written back as the only copy kept. The
SeriesDescription alone is put back when the Clean Descriptors Option finds it clean (see
clean_series_description). The report lists which attributes were removed, blanked, replaced or
cleaned, by keyword only: never a value.
"""

import hashlib
import hmac
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from django.conf import settings
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

RECIPE_PATH = Path(__file__).with_name("deid.basic-profile")
# LO: at most 64 characters. The code sequence (DCM 113100) says the same in coded form.
DEIDENTIFICATION_METHOD = "PS3.15 E.1-1 Basic Profile (deid recipe, BrainScan)"

# PS3.15 E.3.5 Clean Descriptors Option, applied to SeriesDescription only: a description is put
# back after the profile removed it when every word of it is one of these sequence, orientation and
# contrast terms (or a number of at most two digits). Anything else (a name, a date, an accession
# number, a site's own word) keeps it removed: an explicit vocabulary, never a list of what to drop.
# fmt: off
SERIES_DESCRIPTION_VOCABULARY = frozenset({
    # contrast and sequence
    "T1", "T2", "T1W", "T2W", "PD", "PDW", "FLAIR", "DIR", "STIR", "TIRM", "IR", "SE", "TSE", "FSE",
    "GRE", "SPGR", "EPI", "MPRAGE", "SPACE", "CUBE", "BRAVO", "VIBE", "FIESTA", "CISS", "BLADE",
    "PROPELLER", "DWI", "ADC", "TRACE", "DTI", "SWI", "SWAN", "TOF", "MRA", "PERFUSION", "ASL", "DSC",
    "DCE", "FS", "FATSAT", "3D", "2D", "ISO", "MPR", "MIP",
    # orientation
    "AX", "AXIAL", "TRA", "SAG", "SAGITTAL", "COR", "CORONAL", "OBL",
    # contrast agent, anatomy, planning
    "POST", "PRE", "GD", "GAD", "C", "CONTRAST", "BRAIN", "HEAD", "SCOUT", "LOCALIZER", "LOCALISER",
    "SURVEY",
})
# fmt: on
CLEAN_DESCRIPTORS_CODE = ("113105", "Clean Descriptors Option")
SERIES_DESCRIPTION_MAX = 64  # LO
_recipe = None
# pydicom's validation warnings quote the offending value, which may be a patient's name.
pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE


def _recipe_once():
    # deid pulls in matplotlib: imported on the first DICOM upload, not at web start-up.
    global _recipe
    if _recipe is None:
        from deid.config import DeidRecipe
        from deid.logger import bot
        from deid.logger.message import QUIET

        # deid prints to stderr itself (not through logging); its messages may quote values.
        bot.level = QUIET
        _recipe = DeidRecipe(deid=str(RECIPE_PATH), base=False)
    return _recipe


def clean_series_description(value) -> str | None:
    """``value`` written back in a normalised form (upper-case words, one space apart) when every
    word (split on anything but letters and digits) is in SERIES_DESCRIPTION_VOCABULARY or a number
    of at most two digits, with at most one such number (two could be a day and a month); else None.
    """
    words = [word.upper() for word in re.split(r"[^0-9A-Za-z]+", str(value or "")) if word]
    numbers = [word for word in words if word.isdigit()]
    if not words or len(numbers) > 1 or any(len(number) > 2 for number in numbers):
        return None
    if not all(word.isdigit() or word in SERIES_DESCRIPTION_VOCABULARY for word in words):
        return None
    cleaned = " ".join(words)
    return cleaned if len(cleaned) <= SERIES_DESCRIPTION_MAX else None


def _code(value: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = meaning
    return code


def burned_in_annotation(dataset) -> bool:
    """True unless the header says NO: text burnt into the pixels cannot be removed from the
    header, and a slice whose BurnedInAnnotation is absent or unreadable may carry it (so its
    pixels are read for text, cases.burnedin)."""
    return str(dataset.get("BurnedInAnnotation", "")).strip().upper() != "NO"


def declares_burned_in_text(dataset) -> bool:
    """The header says YES: held for a steward without reading the pixels."""
    return str(dataset.get("BurnedInAnnotation", "")).strip().upper() == "YES"


def case_uid_key(case) -> bytes:
    # Keyed per case: the same source UID maps to the same new UID within a case only.
    return hmac.new(settings.SECRET_KEY.encode(), f"dicom-uid:{case.pk}".encode(), hashlib.sha256).digest()


def _is_registered_uid(value: str) -> bool:
    # SOP classes, transfer syntaxes, coding schemes: public constants, not identifiers.
    uid = UID(value)
    return uid.name != str(uid)


def _new_uid(key: bytes, original: str) -> str:
    if _is_registered_uid(original):
        return original
    return generate_uid(prefix="2.25.", entropy_srcs=[key.hex(), original])


def remap_uids(dataset, key: bytes):
    """Replace every non-registered UID with one derived from ``key`` (consistent for equal inputs)."""
    for _, element in _walk(dataset):
        if element.VR == "UI" and element.value:
            if element.VM > 1:
                element.value = [_new_uid(key, str(v)) for v in element.value]
            else:
                element.value = _new_uid(key, str(element.value))
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID


def _walk(dataset, prefix=""):
    for element in dataset:
        path = f"{prefix}{element.tag}"
        yield path, element
        if element.VR == "SQ":
            for index, item in enumerate(element.value or []):
                yield from _walk(item, f"{path}[{index}].")


def _snapshot(dataset):
    return {
        path: (element.keyword or str(element.tag), element.VR, None if element.VR == "SQ" else element.value)
        for path, element in _walk(dataset)
        if element.tag != 0x7FE00010
    }


@dataclass
class DeidReport:
    removed: list[str] = field(default_factory=list)
    blanked: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    # Removed by the profile, then put back by the Clean Descriptors Option (SeriesDescription).
    cleaned: list[str] = field(default_factory=list)
    private_tags_removed: int = 0
    overlay_elements_removed: int = 0
    burned_in_annotation: bool = False

    def as_dict(self):
        return {
            "format": "DICOM",
            "method": DEIDENTIFICATION_METHOD,
            "removed": sorted(set(self.removed)),
            "blanked": sorted(set(self.blanked)),
            "replaced": sorted(set(self.replaced)),
            "cleaned": sorted(set(self.cleaned)),
            "private_tags_removed": self.private_tags_removed,
            "overlay_elements_removed": self.overlay_elements_removed,
            "burned_in_annotation": self.burned_in_annotation,
        }


def deidentify(dataset, uid_key: bytes) -> DeidReport:
    """Apply the basic profile in place; UIDs are remapped with ``uid_key`` (see case_uid_key)."""
    report = DeidReport(burned_in_annotation=burned_in_annotation(dataset))
    # Captured before the recipe removes it (a top-level SeriesDescription only; never logged).
    description = clean_series_description(dataset.get("SeriesDescription"))
    before = _snapshot(dataset)
    report.private_tags_removed = sum(1 for _, e in _walk(dataset) if e.tag.is_private)
    report.overlay_elements_removed = sum(
        1 for _, e in _walk(dataset) if 0x5000 <= e.tag.group <= 0x60FF and e.tag.group % 2 == 0
    )

    def case_uid(item, value, field, **kwargs):
        return _new_uid(uid_key, str(field.element.value))

    recipe = _recipe_once()
    from deid.dicom.parser import DicomParser

    parser = DicomParser(dataset, recipe=recipe)
    parser.define("case_uid", case_uid)
    parser.parse(remove_private=True)
    dataset = parser.dicom
    # Anything private the recipe pass may have missed (nested, malformed creators).
    dataset.remove_private_tags()

    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = DEIDENTIFICATION_METHOD
    codes = [_code("113100", "Basic Application Confidentiality Profile")]
    if description:
        dataset.SeriesDescription = description
        codes.append(_code(*CLEAN_DESCRIPTORS_CODE))
        report.cleaned.append("SeriesDescription")
    dataset.DeidentificationMethodCodeSequence = Sequence(codes)
    # The 128-byte preamble and the file meta group can carry anything: rebuild both.
    dataset.preamble = b"\0" * 128
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.get("SOPClassUID", pydicom.uid.MRImageStorage)
    meta.MediaStorageSOPInstanceUID = dataset.get("SOPInstanceUID") or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta = meta

    after = _snapshot(dataset)
    for path, (keyword, vr, value) in before.items():
        if keyword in report.cleaned and path in after:
            continue  # reported as cleaned
        if 0x5000 <= int(path[1:5], 16) <= 0x60FF and keyword != "PixelData":
            continue  # counted as overlay/curve elements
        if path not in after:
            if not keyword.startswith("("):  # private tags are counted, not named
                report.removed.append(keyword)
        elif vr != "SQ" and after[path][2] != value:
            (report.blanked if after[path][2] in ("", None) else report.replaced).append(keyword)
    return report


def to_bytes(dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()
