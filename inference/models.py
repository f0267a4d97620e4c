"""Model versions (from the cards in ml/models/), the predictions they make and the clinicians'
reviews kept beside them."""

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q

from cases.questions import run_when_a_model_arrives
from ml import tasks
from ml.card import percents, refer_reason
from ml.labels import NOTUMOR

from .reviewbase import ReviewRecord


class ModelVersion(models.Model):
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=100)
    # The clinical question the model answers (ml.tasks); the card's "task", a legacy name mapped.
    task = models.CharField(max_length=100, choices=tasks.choices(), default=tasks.DEFAULT)
    # Relative to settings.ML_MODELS_ROOT, e.g. "brain-tumour/2025-01-01".
    path = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, blank=True)
    classes = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, blank=True)
    card = models.JSONField(default=dict, blank=True)
    card_created_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=False)
    is_available = models.BooleanField(default=True, help_text="Its card is present on disk")
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "-card_created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="modelversion_name_version_unique"),
            models.UniqueConstraint(
                fields=["task"], condition=Q(is_active=True), name="modelversion_one_active_per_task"
            ),
        ]

    def __str__(self):
        return f"{self.name} {self.version}"

    def save(self, *args, **kwargs):
        # Cards written before tasks had their names say "brain-tumour" for tumour-mri.
        self.task = tasks.LEGACY_NAMES.get(self.task, self.task)
        super().save(*args, **kwargs)

    @property
    def task_label(self) -> str:
        return tasks.label(self.task)

    @classmethod
    def active_for(cls, task):
        return cls.objects.filter(task=tasks.LEGACY_NAMES.get(task, task), is_active=True).first()

    def activate(self, user=None) -> list[int]:
        """Make this the task's one active version (``user``: the steward, None for the registry's
        sync) and run again, audited, the task's scans left without a model (cases.questions).
        Returns the ids of the scans re-queued; an activation again re-queues nothing answered."""
        # Two stewards switching at once: lock the task's rows so one switch wins cleanly.
        with transaction.atomic():
            list(ModelVersion.objects.select_for_update().filter(task=self.task).values_list("pk", flat=True))
            ModelVersion.objects.filter(task=self.task, is_active=True).exclude(pk=self.pk).update(
                is_active=False
            )
            ModelVersion.objects.filter(pk=self.pk).update(is_active=True)
            requeued = run_when_a_model_arrives(self.task, user, model=str(self))
        self.is_active = True
        return requeued


class Prediction(models.Model):
    scan = models.ForeignKey("cases.Scan", on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    label = models.CharField(max_length=64, null=True, blank=True)
    confidence = models.FloatField()
    probabilities = models.JSONField(default=dict)
    tumour_probability = models.FloatField(null=True, blank=True)
    tumour_suspected = models.BooleanField(default=False)
    latency_ms = models.FloatField()
    explanation = models.FileField(upload_to="explanations/", null=True, blank=True, max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["scan", "model_version"], name="prediction_one_per_scan_and_model"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1),
                name="prediction_confidence_is_probability",
            ),
        ]

    def __str__(self):
        return f"{self.label or 'no label'} ({self.confidence:.0%}) for scan {self.scan_id}"

    @property
    def sorted_probabilities(self):
        return sorted(self.probabilities.items(), key=lambda item: -item[1])

    # Two answers per scan, with the card's thresholds as ml.serve applies them: tumour present
    # (1 - p(notumor) against tumour_threshold, set low so that few tumours are missed) and type
    # (the most likely of the classes, against refer_threshold). The first can be "suspected"
    # while the second is notumor; pages, CSV and API name them apart.
    @property
    def tumour_threshold(self) -> float:
        return float((self.model_version.card or {}).get("tumour_threshold", 0.5))

    @property
    def refer_threshold(self) -> float:
        return float((self.model_version.card or {}).get("refer_threshold", 0.0))

    @property
    def tumour_reason(self) -> str:
        if self.tumour_probability is None:
            return ""
        shown, limit = percents(self.tumour_probability, self.tumour_threshold)
        side = "at or above" if self.tumour_probability >= self.tumour_threshold else "below"
        return f"tumour probability {shown} is {side} the model's tumour threshold {limit}"

    @property
    def suspected_though_typed_no_tumour(self) -> bool:
        return self.tumour_suspected and self.label == (self.model_version.card or {}).get(
            "no_finding_class", NOTUMOR
        )

    @property
    def confidence_shown(self) -> str:
        """The confidence as a percentage that reads below the refer threshold when it is."""
        return percents(self.confidence, self.refer_threshold)[0]

    @property
    def refer_reason(self) -> str:
        return refer_reason(self.confidence, self.refer_threshold)

    def review_labels(self) -> list[str]:
        """The labels a clinician may give this prediction: its model version's classes (those of
        its probabilities for a version registered without them). The one rule of page and API, so
        a task with other classes is reviewed in its own labels."""
        return list(self.model_version.classes or sorted(self.probabilities))

    @property
    def latest_review(self):
        reviews = list(self.reviews.all())
        return reviews[-1] if reviews else None


class Review(ReviewRecord):
    """A clinician's decision on a prediction, kept beside it; the prediction is never edited."""

    prediction = models.ForeignKey(Prediction, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")

    def __str__(self):
        return f"{self.get_decision_display()} {self.label} by {self.reviewer}"


# The series verdicts and their reviews, in a module of their own; importable from here as Django expects.
from .seriesmodels import SeriesReview, SeriesVerdict  # noqa: E402

__all__ = ["ModelVersion", "Prediction", "Review", "SeriesReview", "SeriesVerdict"]
