"""The fields a clinician's review has whatever it reviews (a slice's prediction, a series'
verdict): a module of its own so that models.py and seriesmodels.py both import it."""

from django.db import models


class ReviewRecord(models.Model):
    """A clinician's decision, kept beside what it reviews, which it never edits. Subclasses add
    the foreign key to what they review and their reviewer (each with its own related name)."""

    class Decision(models.TextChoices):
        CONFIRMED = "confirmed", "Confirmed"
        CORRECTED = "corrected", "Corrected"

    decision = models.CharField(max_length=16, choices=Decision.choices)
    label = models.CharField(max_length=64)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]
