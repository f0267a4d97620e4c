"""Rules every page and API endpoint shares: the Content-Security-Policy on every answer, and
request checks applied before any view reads the request.

A NUL character in a query parameter (its name or a value) is a 400 naming the parameter:
PostgreSQL refuses text holding NUL, so any filter reaching the database with one was a 500
(schemathesis found `GET /api/v1/models/?task=a%00b`), and no parameter needs one.
"""

from functools import wraps

from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from django.shortcuts import render
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission

NUL_MESSAGE = ProhibitNullCharactersValidator.message


def nul_parameters(query) -> list[str]:
    """Names (without their NUL) of the query parameters whose name or any value holds NUL."""
    return sorted(
        {
            name.replace("\x00", "")
            for name, values in query.lists()
            if "\x00" in name or any("\x00" in value for value in values)
        }
    )


def content_security_policy(get_response):
    """settings.CONTENT_SECURITY_POLICY on every answer that has none of its own. The pages load
    scripts, styles and images from this server only, with no inline script or style."""

    def middleware(request):
        response = get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response

    return middleware


def charts_policy(view):
    """For pages that draw Plotly charts: settings.CONTENT_SECURITY_POLICY_CHARTS instead."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY_CHARTS
        return response

    return wrapped


def refuse_nul_in_query(get_response):
    """Pages: the 400 page. The API checks after authentication instead (QueryWithoutNul), so a
    caller without credentials is told 401 first, whatever its query."""

    def middleware(request):
        names = [] if request.path.startswith("/api/") else nul_parameters(request.GET)
        if names:
            detail = f"{NUL_MESSAGE} (query parameter {', '.join(names)})"
            return render(request, "400.html", {"detail": detail}, status=400)
        return get_response(request)

    return middleware


class QueryWithoutNul(BasePermission):
    """Not a right but a rule on the request, run with the default permissions: after the caller
    is authenticated, before any view reads a parameter."""

    def has_permission(self, request, view):
        names = nul_parameters(request.query_params)
        if names:
            raise ValidationError({name: [NUL_MESSAGE] for name in names})
        return True
