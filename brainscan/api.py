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
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from cases.models import AuditEvent

from .clientip import client_ip

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


def _without_nul(value):
    """Error messages may echo the input back ("Select a valid choice. <value> is not one of
    the available choices."): drop NUL characters, which the schema says no text field holds."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


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
    response.data = _without_nul(response.data)
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
            response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
            response["description"] = description
            responses[code] = response
        return responses


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text='Send it as "Authorization: Token <token>".')


class TokenView(APIView):
    """Issue (POST, username + password) or revoke (DELETE) the caller's API token."""

    throttle_classes = [ScopedThrottle]
    throttle_scope = "api-token"

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

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
        token, _ = Token.objects.get_or_create(user=user)
        AuditEvent.record(user, AuditEvent.Verb.LOGIN, method="api-token")
        return Response(TokenSerializer({"token": token.key}).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        AuditEvent.record(request.user, AuditEvent.Verb.LOGOUT, method="api-token")
        return Response(status=status.HTTP_204_NO_CONTENT)
