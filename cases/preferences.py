"""Each user's display preferences (the time zone pages show times in), and the middleware that
applies them to every request."""

import zoneinfo
from functools import lru_cache

from django.conf import settings
from django.db import models
from django.utils import timezone


@lru_cache(maxsize=1)
def time_zone_choices():
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


class Preference(models.Model):
    """One row per user who changed a default; no row means the defaults."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    # Empty: the server's TIME_ZONE, whatever it is set to later.
    time_zone = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "cases"

    def __str__(self):
        return f"Preferences of {self.user}"

    @classmethod
    def time_zone_of(cls, user) -> str:
        if not getattr(user, "is_authenticated", False):
            return settings.TIME_ZONE
        chosen = cls.objects.filter(user=user).values_list("time_zone", flat=True).first()
        return chosen or settings.TIME_ZONE


class TimeZoneMiddleware:
    """Pages render times in the signed-in user's time zone (after AuthenticationMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            zone = zoneinfo.ZoneInfo(Preference.time_zone_of(request.user))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)  # a zone the system no longer knows
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
