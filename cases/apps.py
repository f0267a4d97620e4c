"""App config; connects the authentication audit receivers."""

from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = "Cases"

    def ready(self):
        from . import audit  # noqa: F401  (connects the login/logout signal receivers)
