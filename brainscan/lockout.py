"""The answer to a locked-out login (django-axes' AXES_LOCKOUT_CALLABLE): the site's page, or the
API's JSON on /api/, both saying how long the lock lasts, with Retry-After in seconds."""

import math

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render


def lockout_response(request, original_response=None, credentials=None):
    # Each attempt during the lock starts the wait again (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT),
    # so from this answer on the full cool-off is what is left.
    seconds = int(get_cool_off(request).total_seconds())
    minutes = math.ceil(seconds / 60)
    duration = f"{minutes} minute{'s' if minutes != 1 else ''}"
    message = (
        f"Too many failed logins for this username from your address: try again in {duration}. "
        "Each attempt before then starts the wait again."
    )
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message, "code": "locked_out"}, status=429)
    else:
        response = render(
            request,
            "registration/locked_out.html",
            {"duration": duration, "failure_limit": settings.AXES_FAILURE_LIMIT},
            status=429,
        )
    response["Retry-After"] = str(seconds)
    return response
