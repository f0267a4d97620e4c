"""What every endpoint under /api/v1/ shares: token issue and revocation, one error body shape,
scoped throttles counted in a cache all web processes share, and the schema's error responses."""

import logging

import redis.exceptions
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.cache import caches
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.validators import ProhibitNullCharactersValidator
from django.http import Http404, JsonResponse
from django.views import defaults
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import get_view_model
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from cases.models import AuditEvent
from cases.roles import is_pacs_account

from .clientip import client_ip
from .permissions import PACS_ACCOUNT_REFUSED, NotPacsAccount
from .text import without_nul

logger = logging.getLogger(__name__)

NO_NUL = r"^[^\x00]*$"


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx/5xx answer of the API."""

    detail = serializers.CharField(help_text="What went wrong, for a person to read.")
    code = serializers.CharField(help_text="A stable machine-readable code, e.g. not_found, throttled.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Field name -> messages, for invalid input.",
    )
    files = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="Uploads only: one {file, name, message} per rejected file (file counts from 1).",
    )


class StrictInput:
    """Serializer mixin for request bodies, so the API refuses what its schema refuses: a JSON
    number is not text (DRF's CharField turns 0 into "0"), an empty form field is not a
    value for a number or a choice (DRF would read it as left out), and a field the body may not
    name is refused rather than ignored (`{"taks": "tumour-ct"}` would otherwise open a case for
    the default question)."""

    def to_internal_value(self, data):
        if hasattr(data, "get"):
            errors = {
                str(name): [f"Unknown field: expected {', '.join(self._writable_names())}."]
                for name in data
                if name not in self.fields
            }
            for name, field in self.fields.items():
                if field.read_only or name not in data:
                    continue
                value = data.get(name)
                if isinstance(field, serializers.CharField):
                    if value is not None and not isinstance(value, str):
                        errors[name] = ["Not a valid string."]
                elif value == "":
                    errors[name] = ["Give a value or leave the field out."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def _writable_names(self):
        return [name for name, field in self.fields.items() if not field.read_only] or ["no fields"]


def _flatten(detail):
    if isinstance(detail, dict):
        return {
            str(key): [str(m) for m in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
    if isinstance(detail, list):
        return {"non_field_errors": [str(message) for message in detail]}
    return None


def exception_handler(exc, context):
    """DRF's handler with one body shape: {"detail", "code"[, "errors"]}; never a traceback."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return Response(
            {"detail": "Internal server error.", "code": "server_error"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.values()))[0] if errors else "Invalid input."
        response.data = {"detail": first, "code": "invalid", "errors": errors or {}}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = {
            "detail": str(exc.detail) if isinstance(exc, exceptions.APIException) else str(exc),
            "code": codes if isinstance(codes, str) else "error",
        }
    # Error messages may echo the input back ("Select a valid choice. <value> is not one of the
    # available choices.").
    response.data = without_nul(response.data)
    return response


def not_found(request, exception=None):
    """Django's 404 page, or the API's JSON error body for paths under /api/."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    return defaults.server_error(request)


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is briefly unavailable: retry after the Retry-After header's seconds."
    default_code = "service_unavailable"
    wait = 30


# What the throttle cache raises when it cannot count: Redis down or hung (socket timeouts in
# settings.REDIS_CACHE_OPTIONS make a hung one fail fast), or the file cache's disk.
CACHE_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class ScopedThrottle(ScopedRateThrottle):
    """Views opt in with `throttle_scope`; rates come from settings.API_THROTTLE_RATES, read at
    request time so they can change per deployment (and per test).

    Requests are counted per user, or per client address (brainscan.clientip) before login. When
    the counts cannot be read, a throttled request is refused with 503 and Retry-After rather than
    let through uncounted (token issue is what the throttle guards) or failed as a 500.
    """

    @property
    def cache(self):
        return caches["api-throttle"]

    @property
    def THROTTLE_RATES(self):  # noqa: N802 - the name DRF reads
        return settings.API_THROTTLE_RATES

    def get_ident(self, request):
        # DRF's own reads X-Forwarded-For from anyone: a client could pick a fresh count per request.
        return client_ip(request) or "unknown"

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except CACHE_UNAVAILABLE as error:
            logger.warning(
                "Throttle counts unavailable, %s %s refused with 503: %s", request.method, request.path, error
            )
            raise ServiceUnavailable() from None


ERROR_RESPONSES = {
    "400": "Invalid input: see `errors` (or `files` for an upload).",
    "401": "No credentials, or a bad or revoked token.",
    "403": "Signed in but not allowed (or a missing CSRF token with session auth).",
    "404": "No such object, or one outside your teams.",
    "429": "Too many requests: retry after the `Retry-After` header's seconds.",
}
# Only throttled operations can answer this (their counts live in Redis).
SERVICE_UNAVAILABLE = {
    "503": "The request counter (Redis) is briefly unavailable: retry after `Retry-After` seconds."
}
# Only operations that read a request body can answer this.
UNSUPPORTED_MEDIA_TYPE = {"415": "The request body's Content-Type is not one this operation reads."}
# One real body per error answer, as exception_handler writes it.
ERROR_EXAMPLES = {
    "400": {
        "detail": '"cat" is not a valid choice.',
        "code": "invalid",
        "errors": {"label": ['"cat" is not a valid choice.']},
    },
    "401": {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"},
    "403": {"detail": "You do not have permission to perform this action.", "code": "permission_denied"},
    "404": {"detail": "Not found.", "code": "not_found"},
    "415": {"detail": 'Unsupported media type "text/plain" in request.', "code": "unsupported_media_type"},
    "429": {"detail": "Request was throttled. Expected available in 42 seconds.", "code": "throttled"},
    "503": {
        "detail": "The service is briefly unavailable: retry after the Retry-After header's seconds.",
        "code": "service_unavailable",
    },
}


class AutoSchema(SpectacularAutoSchema):
    """Every operation documents the error answers it can give, with the ErrorSerializer body,
    and text fields say they refuse NUL characters (Django's validator on every CharField)."""

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        refuses_nul = any(isinstance(v, ProhibitNullCharactersValidator) for v in field.validators)
        plain_string = schema.get("type") == "string" and not {"pattern", "enum", "format", "oneOf"} & set(
            schema
        )
        if refuses_nul and plain_string:
            schema["pattern"] = NO_NUL

    def get_override_parameters(self):
        # The routes take any id ("[^/]+"), so that a caller without credentials hears 401 rather
        # than a route's 404; the ids themselves are the models' integer keys.
        parameters = super().get_override_parameters()
        model = get_view_model(self.view, emit_warnings=False)
        if (
            "{id}" in self.path
            and model is not None
            and model._meta.pk.get_internal_type().endswith("AutoField")
        ):
            name = model._meta.verbose_name
            parameters = [
                OpenApiParameter("id", int, OpenApiParameter.PATH, description=f"The {name}'s id."),
                *parameters,
            ]
        return parameters

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        # drf-spectacular never marks a hand-written request body (the upload's) required; one
        # whose every media type requires properties is.
        if body and all(media["schema"].get("required") for media in body["content"].values()):
            body["required"] = True
        return body

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        errors = dict(ERROR_RESPONSES)
        if self.method in ("POST", "PUT", "PATCH"):
            errors |= UNSUPPORTED_MEDIA_TYPE
        if getattr(self.view, "throttle_scope", None):
            errors |= SERVICE_UNAVAILABLE
        for code, description in errors.items():
            if code in responses or (public and code in ("403", "404")):
                continue
            example = OpenApiExample(ERROR_EXAMPLES[code]["code"], value=ERROR_EXAMPLES[code])
            body = OpenApiResponse(ErrorSerializer, description=description, examples=[example])
            responses[code] = self._get_response_for_code(body, code, direction=direction)
        return responses


@extend_schema_serializer(
    examples=[OpenApiExample("Alice", value={"username": "alice", "password": "her-password-here"})]
)
class TokenRequestSerializer(StrictInput, serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


@extend_schema_serializer(
    examples=[OpenApiExample("A token", value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"})]
)
class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text='Send it as "Authorization: Token <token>".')


class TokenView(APIView):
    """Issue (POST, username + password) or revoke (DELETE) the caller's API token."""

    throttle_classes = [ScopedThrottle]
    throttle_scope = "api-token"

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated(), NotPacsAccount()]

    def initialize_request(self, request, *args, **kwargs):
        drf_request = super().initialize_request(request, *args, **kwargs)
        if request.method == "POST":
            # Credentials are in the body: a stale session (and its CSRF check) must not interfere.
            drf_request.authenticators = ()
        return drf_request

    def get_authenticate_header(self, request):
        return "Token"

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenSerializer}, auth=[])
    def post(self, request):
        credentials = TokenRequestSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        # authenticate() goes through django-axes: repeated failures lock the username out.
        user = authenticate(
            request=request._request,
            username=credentials.validated_data["username"],
            password=credentials.validated_data["password"],
        )
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("Unable to log in with the username and password given.")
        if is_pacs_account(user):
            # Its token is made by an administrator (drf_create_token), never by a password.
            raise exceptions.PermissionDenied(PACS_ACCOUNT_REFUSED, code=NotPacsAccount.code)
        token, _ = Token.objects.get_or_create(user=user)
        AuditEvent.record(user, AuditEvent.Verb.LOGIN, method="api-token")
        return Response(TokenSerializer({"token": token.key}).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        AuditEvent.record(request.user, AuditEvent.Verb.LOGOUT, method="api-token")
        return Response(status=status.HTTP_204_NO_CONTENT)
