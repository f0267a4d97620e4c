"""The hospital's PACS over DICOMweb: find a study (QIDO-RS), fetch a series (WADO-RS), store
objects (STOW-RS). Off unless PACS_URL is set. Every failure to talk to it is a PacsUnavailable
that says why; whether to retry, and how often, is the caller's choice (``with_retries``).

Used by receiving studies into cases and by reporting results back from inference; it knows
neither.
"""

import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pydicom
import requests
from dicomweb_client import DICOMwebClient
from django.conf import settings

# QIDO attribute keywords that a study search returns besides the UIDs it matches on.
STUDY_FIELDS = ("ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_FIELDS = ("Modality", "SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances")


class PacsUnavailable(Exception):
    """The PACS could not be reached or refused the request.

    ``reason`` is one of REASONS; ``transient`` says whether trying again later may succeed.
    """

    NOT_CONFIGURED = "not_configured"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    AUTH = "auth"
    HTTP = "http"
    BAD_RESPONSE = "bad_response"
    BROKEN = "broken"  # the connection dropped while an answer streamed in
    REASONS = (NOT_CONFIGURED, REFUSED, TIMEOUT, AUTH, HTTP, BAD_RESPONSE, BROKEN)
    # Gateway and overload answers: the PACS or a proxy in front of it may recover.
    TRANSIENT_STATUSES = (408, 429, 502, 503, 504)

    def __init__(self, reason: str, detail: str, status: int | None = None):
        assert reason in self.REASONS, reason
        self.reason, self.detail, self.status = reason, detail, status
        super().__init__(f"PACS unavailable ({reason}): {detail}")

    @property
    def transient(self) -> bool:
        return (
            self.reason in (self.REFUSED, self.TIMEOUT, self.BROKEN) or self.status in self.TRANSIENT_STATUSES
        )


@dataclass(frozen=True)
class PacsConfig:
    url: str  # the DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web
    user: str = ""
    password: str = ""
    token: str = ""
    timeout: float = 30.0  # seconds, for connecting and for each read

    @classmethod
    def from_settings(cls) -> "PacsConfig":
        if not settings.PACS_URL:
            raise PacsUnavailable(PacsUnavailable.NOT_CONFIGURED, "no PACS is configured (PACS_URL)")
        return cls(
            url=settings.PACS_URL,
            user=settings.PACS_USER,
            password=settings.PACS_PASSWORD or "",
            token=settings.PACS_TOKEN or "",
            timeout=settings.PACS_TIMEOUT,
        )


def pacs_configured() -> bool:
    return bool(settings.PACS_URL)


class Pacs:
    """One DICOMweb service. Each method makes the requests it needs once: no retry inside."""

    def __init__(self, config: PacsConfig | None = None):
        self.config = config or PacsConfig.from_settings()
        session = requests.Session()
        if self.config.token:
            session.headers["Authorization"] = f"Bearer {self.config.token}"
        elif self.config.user:
            session.auth = (self.config.user, self.config.password)
        self._client = DICOMwebClient(self.config.url, session=session, timeout=self.config.timeout)
        self._client.set_http_retry_params(retry=False)

    def find_study(self, study_uid: str) -> dict | None:
        """The study's QIDO-RS record (DICOM JSON), or None when the PACS does not have it."""
        found = self._call(
            "find the study",
            self._client.search_for_studies,
            search_filters={"StudyInstanceUID": study_uid},
            fields=list(STUDY_FIELDS),
        )
        return found[0] if found else None

    def find_series(self, study_uid: str) -> list[dict]:
        """The study's series as QIDO-RS records (DICOM JSON); empty for an unknown study."""
        return self._call(
            "list the study's series",
            self._client.search_for_series,
            study_instance_uid=study_uid,
            fields=list(SERIES_FIELDS),
        )

    def find_instances(self, study_uid: str, series_uid: str | None = None) -> list[dict]:
        return self._call(
            "list the instances",
            self._client.search_for_instances,
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
        )

    def fetch_series(self, study_uid: str, series_uid: str) -> list[pydicom.Dataset]:
        """Every instance of the series (WADO-RS), as the PACS stores them."""
        return self._call(
            "fetch the series",
            self._client.retrieve_series,
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
        )

    def store(self, datasets: list[pydicom.Dataset]) -> list[str]:
        """Send objects to the PACS (STOW-RS); the SOP Instance UIDs it stored. An object it
        refuses is a PacsUnavailable (HTTP), naming how many and why."""
        for dataset in datasets:
            # STOW-RS sends PS3.10 files, which open with a preamble; pydicom writes none unless
            # the dataset has one, and Orthanc then serves the object back without it.
            if getattr(dataset, "preamble", None) is None:
                dataset.preamble = b"\0" * 128
        answer = self._call("store the objects", self._client.store_instances, datasets=datasets)
        failed = answer.get("FailedSOPSequence", [])
        if failed:
            reasons = sorted({str(item.get("FailureReason", "?")) for item in failed})
            raise PacsUnavailable(
                PacsUnavailable.HTTP,
                f"the PACS refused {len(failed)} of {len(datasets)} objects "
                f"(failure reasons {', '.join(reasons)})",
            )
        return [str(item.ReferencedSOPInstanceUID) for item in answer.get("ReferencedSOPSequence", [])]

    def _call(self, what, method, **arguments):
        try:
            return method(**arguments)
        except requests.HTTPError as error:
            raise _from_status(what, error.response) from None
        except (requests.Timeout, TimeoutError):
            raise self._timed_out(what) from None
        except requests.ConnectionError as error:
            # A read that times out while a body streams in arrives as a ConnectionError.
            if "timed out" in str(error).lower():
                raise self._timed_out(what) from None
            raise PacsUnavailable(
                PacsUnavailable.REFUSED, f"could not connect to {shown_url(self.config.url)} to {what}"
            ) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            # Worth trying again; its own message (urllib3's, with whatever it read) is not kept.
            raise PacsUnavailable(
                PacsUnavailable.BROKEN, f"the connection to the PACS broke half-way when trying to {what}"
            ) from None
        except (ValueError, KeyError) as error:
            raise PacsUnavailable(
                PacsUnavailable.BAD_RESPONSE, f"unreadable answer when trying to {what} ({error})"
            ) from None

    def _timed_out(self, what):
        return PacsUnavailable(
            PacsUnavailable.TIMEOUT, f"no answer within {self.config.timeout:g} s when trying to {what}"
        )


def _from_status(what: str, response) -> PacsUnavailable:
    status = response.status_code if response is not None else None
    if status in (401, 403):
        return PacsUnavailable(
            PacsUnavailable.AUTH, f"the PACS refused our credentials ({status}) when trying to {what}", status
        )
    return PacsUnavailable(PacsUnavailable.HTTP, f"the PACS answered {status} when trying to {what}", status)


def shown_url(url: str) -> str:
    """``url`` as a message may show it: without a user or password written into it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def with_retries(call, *, attempts=3, backoff_s=1.0, max_backoff_s=30.0, sleep=time.sleep):
    """``call()``, tried again after a transient PacsUnavailable (refused, timeout, 5xx/429)
    up to ``attempts`` times in all, waiting ``backoff_s`` doubled each time, with jitter.
    Other errors, and the last transient one, propagate."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except PacsUnavailable as error:
            if not error.transient or attempt == attempts:
                raise
            delay = min(max_backoff_s, backoff_s * 2 ** (attempt - 1))
            sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not security
    raise AssertionError("unreachable")
