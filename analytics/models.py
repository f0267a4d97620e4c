"""Reference datasets (a folder of class folders, or reviewed case scans) and their cached statistics."""

from django.db import models


class ReferenceDataset(models.Model):
    class Kind(models.TextChoices):
        FOLDER = "folder", "Folder of class folders"
        REVIEWED_SCANS = "reviewed_scans", "Reviewed case scans"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FOLDER)
    # Absolute path of the folder (kind=folder); image paths are relative to it.
    root = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["name"], name="referencedataset_name_unique")]

    def __str__(self):
        return self.name


class DatasetImage(models.Model):
    """One image of a reference dataset: its label and what the import read without decoding."""

    dataset = models.ForeignKey(ReferenceDataset, on_delete=models.CASCADE, related_name="images")
    # Relative to dataset.root for folders; "scan/<id>" for reviewed scans.
    relpath = models.CharField(max_length=500)
    # Set for reviewed case scans: its case's consent decides whether the image may be used.
    scan = models.ForeignKey("cases.Scan", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    label = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    mode = models.CharField(max_length=16)
    file_size = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["dataset", "relpath"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "relpath"], name="datasetimage_dataset_relpath_unique")
        ]
        indexes = [
            # Montage sampling and per-class statistics: one dataset's images of one label.
            models.Index(fields=["dataset", "label"], name="datasetimage_dataset_label_idx"),
        ]

    def __str__(self):
        return f"{self.dataset}: {self.relpath} ({self.label})"


class DatasetStats(models.Model):
    """The cached statistics of a dataset: files in Django storage, figures in ``data``.

    Pages read only this row and its files; the Celery task rewrites both.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Computing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    dataset = models.OneToOneField(ReferenceDataset, on_delete=models.CASCADE, related_name="stats")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_changed_at = models.DateTimeField(auto_now=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "dataset statistics"

    def __str__(self):
        return f"Statistics of {self.dataset} ({self.status})"

    @property
    def files(self) -> dict:
        """Storage names of the cached images, keyed by the name pages ask for."""
        return self.data.get("files", {})
