"""STOW-RS (PS3.18 10.5): a PACS pushes studies to ``POST /dicomweb/studies``.

The body is multipart/related; type="application/dicom", one PS3.10 object per part; the caller
authenticates with an API token (``Authorization: Token ...``) of a PACS account (cases.roles,
role ``pacs``: it can do nothing else) that belongs to one team, whose cases receive the studies;
any other account's token is refused (403, audited), a clinician's of that team too. The objects
take the upload path (cases.pacs_import): all are stored, or none. The answer is DICOM JSON: 200 with the
ReferencedSOPSequence, or 409 (413 past a limit) with every object in the FailedSOPSequence, the
refused ones with their reason; 400 for a body that is not multipart, 415 for another type.
"""

import re

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from . import pacs_import
from .models import AuditEvent, CaseClosed, Membership
from .roles import PACS_ACCOUNT_HELP, PACS_GROUP, is_pacs_account

DICOM_TYPE = "application/dicom"
_PARAMETER = re.compile(r';\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def _parameters(content_type: str) -> dict:
    return {name.lower(): value.strip('"') for name, value in _PARAMETER.findall(content_type or "")}


def split_parts(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts of a multipart body (RFC 2046), each as (headers, content); ParseError if it is
    not one."""
    delimiter = b"\r\n--" + boundary
    sections = (b"\r\n" + body).split(delimiter)
    if len(sections) < 2:
        raise exceptions.ParseError(
            "The body is not multipart/related with the boundary its Content-Type names."
        )
    parts = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            return parts
        head, separator, content = section.partition(b"\r\n\r\n")
        if not separator:
            raise exceptions.ParseError("A part of the body has no header block.")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        part_type = headers.get("content-type", DICOM_TYPE).split(";")[0].strip().lower()
        if part_type != DICOM_TYPE:
            raise exceptions.ParseError(f"Every part must be {DICOM_TYPE}; one is {part_type[:60]!r}.")
        parts.append(content)
    raise exceptions.ParseError("The body ends without its closing boundary.")


class StowParser(BaseParser):
    """multipart/related; type="application/dicom" -> the objects' bytes, at most
    STOW_MAX_BYTES in all."""

    media_type = "multipart/related"

    def parse(self, stream, media_type=None, parser_context=None):
        parameters = _parameters(media_type)
        if parameters.get("type", "").lower() != DICOM_TYPE:
            raise exceptions.UnsupportedMediaType(
                media_type, detail=f'STOW-RS here takes multipart/related; type="{DICOM_TYPE}" only.'
            )
        boundary = parameters.get("boundary", "")
        if not boundary:
            raise exceptions.ParseError("The Content-Type names no boundary.")
        cap = settings.STOW_MAX_BYTES
        body = stream.read(cap + 1) if stream is not None else b""
        if len(body) > cap:
            raise PayloadTooLarge(
                f"The body is larger than {cap:,} bytes (STOW_MAX_BYTES). Nothing was stored."
            )
        parts = split_parts(body, boundary.encode("latin-1"))
        if not parts:
            raise exceptions.ParseError("The body holds no DICOM object.")
        return parts


class DicomJSONRenderer(JSONRenderer):
    media_type = "application/dicom+json"


class IsPacsAccount(BasePermission):
    """Least privilege: the token kept in the PACS's database pushes studies and nothing more, and a
    person's token (which reads every case of the team) is not kept there."""

    code = "not_pacs_account"
    message = (
        f"Only a PACS account (role {PACS_GROUP!r}) pushes studies here; this token's account is not one. "
        + PACS_ACCOUNT_HELP
    )

    def has_permission(self, request, view):
        return is_pacs_account(request.user)


def receiving_team(user):
    """The one team a pushing account belongs to."""
    teams = list(Membership.objects.filter(user=user).select_related("team")[:2])
    if len(teams) != 1:
        raise exceptions.PermissionDenied(
            "An account that pushes studies belongs to exactly one team, whose cases receive them "
            f"(a service account); this one belongs to {'none' if not teams else 'several'}."
        )
    return teams[0].team


def _element(vr, *values):
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def _reference(item):
    return {
        "00081150": _element("UI", *[v for v in [item.sop_class] if v]),
        "00081155": _element("UI", *[v for v in [item.sop_instance] if v]),
    }


def stow_answer(arrivals, failures: dict) -> dict:
    """The STOW-RS response: ``failures`` maps an object's index to (reason code, message)."""
    answer = {}
    referenced = [_reference(a) for a in arrivals if a.index not in failures]
    failed = []
    for item in arrivals:
        if item.index in failures:
            code, message = failures[item.index]
            failed.append(
                _reference(item)
                | {"00081197": _element("US", code), "00000902": _element("LO", message[:64])}
            )
    if referenced:
        answer["00081199"] = _element("SQ", *referenced)
    if failed:
        answer["00081198"] = _element("SQ", *failed)
    return answer


# Not part of /api/v1/'s OpenAPI schema: PS3.18 defines it (multipart/related in, DICOM JSON out).
@extend_schema(exclude=True)
class StowView(APIView):
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated, IsPacsAccount]
    parser_classes = [StowParser]
    renderer_classes = [DicomJSONRenderer, JSONRenderer]

    def get_authenticate_header(self, request):
        return "Token"

    def permission_denied(self, request, message=None, code=None):
        # Before the body is read: who tried to push, never what.
        if request.user.is_authenticated:
            AuditEvent.record(request.user, AuditEvent.Verb.PACS_PUSH_REJECTED, reason=code or "forbidden")
        super().permission_denied(request, message=message, code=code)

    def post(self, request):
        declared = request.META.get("CONTENT_LENGTH") or "0"
        # isdigit() alone takes "²", which int() refuses.
        if not (declared.isascii() and declared.isdigit()):
            raise exceptions.ParseError("The Content-Length header is not a number of bytes.")
        # Refused before the body is read: it would be read whole before any object is checked.
        if int(declared) > settings.STOW_MAX_BYTES:
            raise PayloadTooLarge(
                f"The body is larger than {settings.STOW_MAX_BYTES:,} bytes (STOW_MAX_BYTES)."
            )
        team = receiving_team(request.user)
        parts = request.data
        arrivals = [pacs_import.arrival(index, data) for index, data in enumerate(parts, start=1)]
        try:
            batches = pacs_import.prepare(arrivals, seconds=settings.UPLOAD_MAX_SECONDS)
            pacs_import.store_batches(batches, team=team, user=request.user)
        except pacs_import.ImportRejected as rejection:
            refused = {e.index: (e.failure, e.message) for e in rejection.errors}
            code = (
                pacs_import.FAILURE_OUT_OF_RESOURCES
                if rejection.status in (413, 503)
                else pacs_import.FAILURE_PROCESSING
            )
            failures = {a.index: refused.get(a.index, (code, str(rejection))) for a in arrivals}
            return self._refused(request, team, arrivals, failures, rejection.code, rejection.status)
        except CaseClosed as refusal:
            failures = {a.index: (pacs_import.FAILURE_PROCESSING, str(refusal)) for a in arrivals}
            return self._refused(request, team, arrivals, failures, refusal.code, status.HTTP_409_CONFLICT)
        return Response(stow_answer(arrivals, {}), status=status.HTTP_200_OK)

    def _refused(self, request, team, arrivals, failures, code, answer_status):
        # Counts and codes only: never a UID or a header value of what was sent.
        AuditEvent.record(
            request.user,
            AuditEvent.Verb.PACS_PUSH_REJECTED,
            team,
            reason=code,
            objects=len(arrivals),
            refused=sum(1 for c, _ in failures.values() if c == pacs_import.FAILURE_REFUSED),
        )
        headers = {"Retry-After": "60"} if answer_status == status.HTTP_503_SERVICE_UNAVAILABLE else None
        return Response(stow_answer(arrivals, failures), status=answer_status, headers=headers)
