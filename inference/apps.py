"""App config for the inference app: it classifies the scans that cases announce ready."""

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self):
        from cases.signals import scans_ready

        from .tasks import publish_ready_scans

        scans_ready.connect(publish_ready_scans, dispatch_uid="inference.publish_ready_scans")
