"""Studies and series of a case, keyed by their de-identified (per-case remapped) UIDs, with the
non-identifying description a reader needs (modality, series description, orientation), and
where each DICOM scan sits in its series. JPEG/PNG scans belong to none."""

import hashlib
import hmac
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import F

# Free text a site may fill with a name: kept only as short as a sequence label is.
MAX_DESCRIPTION_LENGTH = 64


class Study(models.Model):
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="studies")
    # The remapped StudyInstanceUID (cases.deidentification.remap_uids), never the source one.
    study_uid = models.CharField(max_length=64)
    # join_key(): how a later pull or push of the same study finds this case; blank for a study
    # stored before it was kept.
    join_key = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["case", "study_uid"], name="study_case_uid_unique")]
        indexes = [
            # "Which case of this team already holds this study" (cases.pacs_import.case_of_study).
            models.Index(fields=["join_key"], name="study_join_key_idx"),
        ]

    def __str__(self):
        return f"Study {self.pk} of {self.case_id}"


class Series(models.Model):
    class Orientation(models.TextChoices):
        AXIAL = "axial", "Axial"
        CORONAL = "coronal", "Coronal"
        SAGITTAL = "sagittal", "Sagittal"
        UNKNOWN = "", "Orientation unknown"

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="series")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    # The remapped SeriesInstanceUID: two uploads of one series land in the same row.
    series_uid = models.CharField(max_length=64)
    modality = models.CharField(max_length=16, blank=True)
    # What de-identification leaves of SeriesDescription (T1, FLAIR...); empty when it removes it.
    description = models.CharField(max_length=MAX_DESCRIPTION_LENGTH, blank=True)
    orientation = models.CharField(max_length=16, choices=Orientation.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study_id", "created_at", "id"]
        verbose_name_plural = "series"
        constraints = [models.UniqueConstraint(fields=["case", "series_uid"], name="series_case_uid_unique")]

    def __str__(self):
        return f"Series {self.pk} of {self.case_id}"

    def slices(self):
        """The series' scans still in the case, in slice order."""
        return self.scans.not_retracted().order_by(*SLICE_ORDER)

    @property
    def title(self) -> str:
        return " · ".join(part for part in (self.modality, self.description) if part) or f"Series {self.pk}"


# Slice order: the instance number the scanner gave, then the position along the slice normal.
SLICE_ORDER = [
    F("series_instance").asc(nulls_last=True),
    F("series_location").asc(nulls_last=True),
    "id",
]


def slice_key(scan):
    """SLICE_ORDER for scans already read (the case page, the viewer)."""
    return (
        scan.series_instance is None,
        scan.series_instance or 0,
        scan.series_location is None,
        scan.series_location or 0.0,
        scan.pk,
    )


@dataclass
class SeriesGroup:
    series: "Series | None"  # None: the JPEG/PNG images (and DICOM slices without UIDs)
    scans: list = field(default_factory=list)
    verdict: object = None  # the series' current SeriesVerdict, where the page reads it (cases.reading)


def group_by_series(scans) -> list[SeriesGroup]:
    """``scans`` (with their series read) grouped by series, study by study, each in slice order;
    the single images last, in upload order."""
    groups, singles = {}, SeriesGroup(None)
    for scan in scans:
        if scan.series_id is None:
            singles.scans.append(scan)
        else:
            groups.setdefault(scan.series_id, SeriesGroup(scan.series)).scans.append(scan)
    ordered = sorted(groups.values(), key=lambda group: (group.series.study_id, group.series.pk))
    for group in ordered:
        group.scans.sort(key=slice_key)
    return ordered + ([singles] if singles.scans else [])


def _floats(value, count):
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def orientation(dataset) -> str:
    """Axial, coronal or sagittal: the patient axis closest to the slice normal."""
    cosines = _floats(dataset.get("ImageOrientationPatient"), 6)
    if cosines is None:
        return Series.Orientation.UNKNOWN
    normal = np.cross(cosines[:3], cosines[3:])
    if not np.any(normal):
        return Series.Orientation.UNKNOWN
    axis = int(np.argmax(np.abs(normal)))
    return (Series.Orientation.SAGITTAL, Series.Orientation.CORONAL, Series.Orientation.AXIAL)[axis]


def location(dataset) -> float | None:
    """The slice's position along its normal (mm): ImagePositionPatient projected on it."""
    cosines = _floats(dataset.get("ImageOrientationPatient"), 6)
    position = _floats(dataset.get("ImagePositionPatient"), 3)
    if cosines is None or position is None:
        return None
    return round(float(np.dot(np.cross(cosines[:3], cosines[3:]), position)), 4)


def _short_text(dataset, keyword, length) -> str:
    text = str(dataset.get(keyword, "") or "").strip()
    return text if len(text) <= length else ""


def _instance_number(dataset) -> int | None:
    try:
        number = int(dataset.get("InstanceNumber"))
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def join_key(cleaned_study_uid: str) -> str:
    """Keyed hash (PATIENT_REF_KEY) of a StudyInstanceUID as de-identification first leaves it,
    before the per-case remap (cases.deidentification: remapped without a key, the same for every
    arrival of the study): an upload, a pull and a push of one study share it, so a later pull or
    push joins the case that holds the study, however it first arrived."""
    message = f"study-join:{cleaned_study_uid.strip()}".encode()
    return hmac.new(settings.PATIENT_REF_KEY.encode(), message, hashlib.sha256).hexdigest()


def place(case, dataset, joined: str = "") -> dict:
    """The Scan fields that put a de-identified, UID-remapped DICOM slice in its case's study and
    series, creating them on first sight; {} for a JPEG/PNG image (``dataset`` None) or a slice
    without UIDs. ``joined``: the study's join_key(), read before the remap. Called inside the
    upload's transaction, with the case row locked."""
    if dataset is None or not dataset.get("StudyInstanceUID") or not dataset.get("SeriesInstanceUID"):
        return {}
    study, _ = Study.objects.get_or_create(
        case=case, study_uid=str(dataset.StudyInstanceUID), defaults={"join_key": joined}
    )
    if joined and not study.join_key:  # a study stored before join keys were kept
        Study.objects.filter(pk=study.pk).update(join_key=joined)
    series, _ = Series.objects.get_or_create(
        case=case,
        series_uid=str(dataset.SeriesInstanceUID),
        defaults={
            "study": study,
            "modality": _short_text(dataset, "Modality", 16),
            "description": _short_text(dataset, "SeriesDescription", MAX_DESCRIPTION_LENGTH),
            "orientation": orientation(dataset),
        },
    )
    return {
        "series": series,
        "series_instance": _instance_number(dataset),
        "series_location": location(dataset),
    }


def series_verdicts():
    """Every series' verdicts, through the relation the inference app adds to Series
    (``Series.verdicts``): cases reads them without importing inference."""
    return Series.verdicts.rel.related_model.objects.all()


def series_reviews():
    """Every series verdict's reviews (``SeriesVerdict.reviews``), read the same way."""
    return series_verdicts().model.reviews.rel.related_model.objects.all()
