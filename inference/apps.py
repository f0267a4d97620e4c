"""App config for the inference app: it classifies the scans that cases announce ready, and
judges a series again when cases announce it lost a slice."""

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self):
        from cases.signals import scans_ready, series_changed

        from .series_verdict import after_retraction
        from .tasks import publish_ready_scans

        scans_ready.connect(publish_ready_scans, dispatch_uid="inference.publish_ready_scans")
        series_changed.connect(after_retraction, dispatch_uid="inference.series_after_retraction")
