"""Studies from the PACS into cases: pulled by StudyInstanceUID (QIDO-RS to find its series,
WADO-RS to fetch them, in a task: cases/tasks.py) or pushed to us (STOW-RS: cases/dicomweb.py).

Every object takes the upload path (cases.uploads.clean_slices, store_scans): the same limits,
checks, de-identification, burnt-in text hold and per-case UID remapping. One call stores all of
its objects or none. A study that arrives without a case opens one, one case per study, its
patient reference kept as the keyed hash only; more of a study the team already holds (another
series, the same push again, a study first uploaded) joins that study's case, and objects it
already has are skipped.
"""

import copy
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from time import monotonic

import pydicom
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from ml.preprocess import is_dicom

from . import deidentification, studies, uploads
from .models import Case, Membership, Scan, Study, Team
from .pacs import Pacs
from .refusals import UploadRefused, UploadRejected
from .roles import CLINICIAN_GROUP, PACS_GROUP, pacs_group
from .studyimports import StudyImport, study_key

logger = logging.getLogger(__name__)

UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# A pull takes the series the clinical questions read; a study's reports (SR), captures, key
# objects and presentation states stay in the PACS.
PULL_MODALITIES = ("MR", "CT")
# PS3.18 Table I.2-1 failure reasons, for the STOW-RS answer.
FAILURE_REFUSED = 0xC000  # cannot understand: our checks refused the object
FAILURE_OUT_OF_RESOURCES = 0xA700  # past a limit of one request
FAILURE_PROCESSING = 0x0110  # not stored: another object of the request failed, or the case is closed


class ImportRejected(Exception):
    """Nothing was stored: the message says why, ``errors`` which objects (ObjectError)."""

    def __init__(self, message, errors=(), *, code="invalid_objects", status=409):
        super().__init__(message)
        self.errors, self.code, self.status = list(errors), code, status


class StudyNotFound(Exception):
    """The PACS holds no study with that StudyInstanceUID."""


class PullTakenOver(Exception):
    """Nothing was stored: while this attempt fetched, the pull was handed to another (the sweep)."""


@dataclass(frozen=True)
class ObjectError:
    index: int  # 1-based position in the request
    sop_class: str
    sop_instance: str  # the sender's own UID, echoed back to it, never stored
    message: str
    failure: int = FAILURE_REFUSED


@dataclass
class Arrival:
    """One object as it arrived, with what we read from it before de-identification."""

    index: int
    data: bytes
    study_uid: str = ""
    patient_id: str = ""
    sop_class: str = ""
    sop_instance: str = ""


@dataclass
class StudyBatch:
    study_uid: str
    patient_id: str
    arrivals: list = field(default_factory=list)
    images: list = field(default_factory=list)  # uploads.CleanImage, de-identified


def check_study_uid(value) -> str:
    uid = str(value or "").strip()
    if not uid or len(uid) > 64 or not UID_PATTERN.match(uid):
        raise ValueError(
            "A StudyInstanceUID is digits and dots, at most 64 characters (e.g. 1.2.840.113619.2.1)."
        )
    return uid


def arrival(index: int, data: bytes) -> Arrival:
    """``data`` (a PS3.10 object) with its study, patient and SOP UIDs read from its header."""
    found = Arrival(index, data)
    try:
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=False)
    except Exception:  # unreadable: clean_slices says so, in the uploads' words
        return found
    found.study_uid = str(header.get("StudyInstanceUID", "") or "")
    found.patient_id = str(header.get("PatientID", "") or "")
    found.sop_class = str(header.get("SOPClassUID", "") or "")
    found.sop_instance = str(header.get("SOPInstanceUID", "") or "")
    return found


def dataset_bytes(dataset) -> bytes:
    """A fetched dataset as the PS3.10 bytes an upload would hold."""
    out = io.BytesIO()
    if getattr(dataset, "preamble", None) is None:
        dataset.preamble = b"\0" * 128
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def check_limits(arrivals: list[Arrival]):
    """The upload limits of one request: slices (UPLOAD_MAX_SLICES) and pixels declared together
    (UPLOAD_MAX_TOTAL_PIXELS), before anything is decoded."""
    if len(arrivals) > settings.UPLOAD_MAX_SLICES:
        raise ImportRejected(
            f"{len(arrivals)} objects arrived at once; at most {settings.UPLOAD_MAX_SLICES} slices are "
            "taken together (UPLOAD_MAX_SLICES). Nothing was stored.",
            code="too_many_slices",
            status=413,
        )
    try:
        uploads.check_pixel_budget([SimpleUploadedFile("object.dcm", a.data) for a in arrivals])
    except UploadRefused as refusal:
        raise ImportRejected(str(refusal), code=refusal.code, status=refusal.status) from None


def prepare(arrivals: list[Arrival], seconds: float | None = None) -> list[StudyBatch]:
    """Check and de-identify every object, grouped by study; ImportRejected (with one ObjectError
    per bad object) if any object is refused. ``seconds``: a web request's budget, as an upload's
    (UPLOAD_MAX_SECONDS); past it, ImportRejected with status 503."""
    check_limits(arrivals)
    batches, errors = {}, []
    deadline = None if seconds is None else monotonic() + seconds
    for item in arrivals:
        if deadline is not None and monotonic() > deadline:
            raise ImportRejected(
                f"The server is too busy to check these objects now (it took longer than {seconds:g} s). "
                "Nothing was stored: send them again in a minute, or fewer at once.",
                code="upload_timeout",
                status=503,
            )
        try:
            if not is_dicom(item.data[:132]):
                raise UploadRejected("The part is not a DICOM (PS3.10) object.")
            if not item.study_uid:
                raise UploadRejected("The DICOM object has no StudyInstanceUID.")
            images = uploads.clean_slices(SimpleUploadedFile("object.dcm", item.data))
        except UploadRejected as rejection:
            errors.append(ObjectError(item.index, item.sop_class, item.sop_instance, str(rejection)))
            continue
        batch = batches.setdefault(item.study_uid, StudyBatch(item.study_uid, item.patient_id))
        batch.arrivals.append(item)
        batch.images.extend(images)
    if errors:
        raise ImportRejected(
            f"{len(errors)} of {len(arrivals)} objects were refused, so none was stored: "
            + "; ".join(f"object {e.index}: {e.message}" for e in errors[:5]),
            errors,
        )
    if sum(len(batch.images) for batch in batches.values()) > settings.UPLOAD_MAX_SLICES:
        raise ImportRejected(
            f"These objects hold more than {settings.UPLOAD_MAX_SLICES} slices (UPLOAD_MAX_SLICES). "
            "Nothing was stored.",
            code="too_many_slices",
            status=413,
        )
    return list(batches.values())


def service_account(team) -> "object":
    """The team's PACS account, which a pull without a user works under: its member with the PACS
    role (the first made, if several), else ``pacs-team-<id>``, made with that role and no password.
    An existing account of that name that can log in (a person's, created by hand) or holds another
    role is not taken over: the pull is refused rather than run, and recorded, under someone's name."""
    members = get_user_model().objects.filter(memberships__team=team, groups__name=PACS_GROUP)
    member = members.order_by("pk").first()
    if member is not None:
        return member
    user, created = get_user_model().objects.get_or_create(username=f"pacs-team-{team.pk}")
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        user.groups.add(pacs_group())
        Membership.objects.get_or_create(user=user, team=team)
    elif user.has_usable_password() or user.is_staff or user.is_superuser:
        raise ImportRejected(
            f"the account {user.username!r} can log in: it is not {team}'s PACS account; rename it"
        )
    elif not Membership.objects.filter(user=user, team=team).exists():
        raise ImportRejected(f"the account {user.username!r} is not a member of {team}")
    elif user.groups.exclude(name=CLINICIAN_GROUP).exists():
        raise ImportRejected(
            f"the account {user.username!r} holds another role: it is not {team}'s PACS account"
        )
    else:
        # Made by an earlier version as a clinician that cannot log in: it takes the PACS role instead.
        user.groups.set([pacs_group()])
    return user


def case_of_study(team, key: str, joined: str = ""):
    """The case of ``team`` that already holds the study: pulled or pushed before (its StudyImport
    ``key``), or uploaded (its Study's ``joined``, studies.join_key); None if none."""
    done = StudyImport.objects.filter(team=team, study_key=key, status=StudyImport.Status.DONE)
    case_id = done.exclude(case=None).order_by("-created_at").values_list("case", flat=True).first()
    if case_id is None and joined:
        uploaded = Study.objects.filter(case__team=team, join_key=joined).order_by("-created_at")
        case_id = uploaded.values_list("case", flat=True).first()
    return Case.objects.filter(pk=case_id).first() if case_id else None


def _join_key(batch) -> str:
    """The batch's studies.join_key, from its cleaned images (not yet remapped for a case)."""
    uids = {str(image.dicom.StudyInstanceUID) for image in batch.images if image.dicom is not None}
    return studies.join_key(uids.pop()) if len(uids) == 1 else ""


def _not_yet_stored(case, images):
    """``images`` less the slices the case already holds (same de-identified content)."""
    held = set(case.scans.not_retracted().values_list("sha256", flat=True))
    if not held:
        return images
    key = deidentification.case_uid_key(case)
    fresh = []
    for image in images:
        remapped = copy.deepcopy(image.dicom)
        deidentification.remap_uids(remapped, key)
        if hashlib.sha256(deidentification.to_bytes(remapped)).hexdigest() not in held:
            fresh.append(image)
    return fresh


def store_batches(batches, *, team, user, case=None, source=StudyImport.Source.PUSH, record=None, note=""):
    """Store prepared studies in one transaction: [(case, new scans)] per study, or nothing.

    ``record``: the pull being served (marked done with its case); else a done row is written."""
    if case is not None and case.team_id != team.pk:
        raise ValueError("The case is not the team's.")
    results, stored = [], []
    try:
        with transaction.atomic():
            # Two arrivals of one new study at once (a push in two requests, a pull and a push)
            # would each open a case: the team's row lock makes the second find the first's.
            Team.objects.select_for_update().filter(pk=team.pk).first()
            # The sweep may have handed a slow pull to another attempt: only the holder stores it.
            if record is not None and not _still_claimed(record):
                raise PullTakenOver(f"pull {record.pk} is no longer this attempt's")
            for batch in batches:
                key = study_key(batch.study_uid)
                target = case or case_of_study(team, key, _join_key(batch))
                if target is None:
                    target = Case.open(user, team, patient_reference=batch.patient_id)
                images = _not_yet_stored(target, batch.images)
                scans = uploads.store_scans(target, user, images) if images else []
                stored.extend(scans)
                if record is not None:
                    record.case, record.status, record.scan_count = (
                        target,
                        StudyImport.Status.DONE,
                        len(scans),
                    )
                    record.study_uid, record.reason = "", note
                    record.save()
                else:
                    StudyImport.objects.create(
                        team=team,
                        case=target,
                        requested_by=user,
                        source=source,
                        status=StudyImport.Status.DONE,
                        study_key=key,
                        scan_count=len(scans),
                    )
                results.append((target, scans))
    except BaseException:
        # store_scans removes its own files when its rows roll back; an earlier study's are ours.
        storage = Scan._meta.get_field("image").storage
        for scan in stored:
            storage.delete(scan.image.name)
        raise
    return results


def _still_claimed(record) -> bool:
    return (
        StudyImport.objects.select_for_update()
        .filter(pk=record.pk, status=StudyImport.Status.FETCHING, claim_token=record.claim_token)
        .exists()
    )


def store_datasets(datasets, *, team, user, case=None, source=StudyImport.Source.PULL, record=None, note=""):
    """Store ``datasets`` (pydicom, as fetched) like an upload into ``case``, or into the case of
    their study (opened if new): (case, new scans). Raises ImportRejected (nothing stored) for a
    refused object, several studies without a case, or a limit; CaseClosed for a closed case."""
    arrivals = [arrival(index, dataset_bytes(ds)) for index, ds in enumerate(datasets, start=1)]
    if not arrivals:
        raise ImportRejected("The study holds no objects.", code="empty_study")
    batches = prepare(arrivals)
    if case is None and len(batches) > 1:
        raise ImportRejected(
            f"These objects belong to {len(batches)} studies; give a case or send one study."
        )
    if case is not None and len(batches) > 1:
        batches = [_merged(batches)]
    [(stored_in, scans)] = store_batches(
        batches, team=team, user=user, case=case, source=source, record=record, note=note
    )
    return stored_in, scans


def _merged(batches):
    merged = StudyBatch(batches[0].study_uid, batches[0].patient_id)
    for batch in batches:
        merged.arrivals += batch.arrivals
        merged.images += batch.images
    return merged


def _value(record: dict, tag: str, default=""):
    return ((record.get(tag) or {}).get("Value") or [default])[0]


def fetch_study(pacs: Pacs, study_uid: str) -> tuple[list, list[str]]:
    """The instances of the study's MR and CT series (QIDO-RS for its series, WADO-RS for each),
    and the modalities of the series left out (reports, captures, presentation states...)."""
    series = pacs.find_series(study_uid)
    if not series:
        raise StudyNotFound("The PACS holds no study with this StudyInstanceUID.")
    wanted = [s for s in series if str(_value(s, "00080060")).upper() in PULL_MODALITIES]
    skipped = sorted(str(_value(s, "00080060", "?")) for s in series if s not in wanted)
    if not wanted:
        raise ImportRejected(
            f"The study holds no MR or CT series (only {', '.join(skipped)}). Nothing was stored.",
            code="no_image_series",
        )
    declared = sum(int(_value(s, "00201209", 0) or 0) for s in wanted)
    if declared > settings.UPLOAD_MAX_SLICES:
        raise ImportRejected(
            f"The study holds {declared} objects; at most {settings.UPLOAD_MAX_SLICES} are taken at once "
            "(UPLOAD_MAX_SLICES). Nothing was fetched.",
            code="too_many_slices",
            status=413,
        )
    datasets = []
    for record in wanted:
        datasets.extend(pacs.fetch_series(study_uid, str(_value(record, "0020000E"))))
    return datasets, skipped


def import_study(study_uid, *, team, user=None, case=None, pacs=None, record=None) -> Case:
    """Fetch every MR and CT series of the study from the configured PACS and store them like an
    upload: the case (``case``, the study's case in ``team``, or a new one). Raises PacsUnavailable,
    StudyNotFound, ImportRejected, CaseClosed; nothing is stored unless all of it is."""
    study_uid = check_study_uid(study_uid)
    if case is not None:
        case.check_open("pull a study into it")
    datasets, skipped = fetch_study(pacs or Pacs(), study_uid)
    note = f"Left out {len(skipped)} series that are not MR or CT ({', '.join(skipped)})." if skipped else ""
    stored_in, _ = store_datasets(
        datasets, team=team, user=user or service_account(team), case=case, record=record, note=note
    )
    return stored_in
