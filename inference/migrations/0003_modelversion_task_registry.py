from django.db import migrations, models

# Frozen here: the migration must not change when ml.tasks does.
TASKS = ("tumour-mri", "dementia-mri", "tumour-ct")


def existing_versions_answer_tumour_mri(apps, schema_editor):
    """Every version registered before tasks had names was the brain-tumour MRI model."""
    ModelVersion = apps.get_model("inference", "ModelVersion")
    legacy = ModelVersion.objects.exclude(task__in=TASKS)
    if ModelVersion.objects.filter(task="tumour-mri", is_active=True).exists():
        legacy.update(is_active=False)
    # At most one of them stays active (one active version per task).
    active = list(legacy.filter(is_active=True).order_by("-card_created_at", "-id").values_list("pk", flat=True))
    ModelVersion.objects.filter(pk__in=active[1:]).update(is_active=False)
    legacy.update(task="tumour-mri")


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0002_review_from_cases"),
    ]

    operations = [
        migrations.AlterField(
            model_name="modelversion",
            name="task",
            field=models.CharField(
                choices=[
                    ("tumour-mri", "Tumour (MRI)"),
                    ("dementia-mri", "Dementia staging (MRI)"),
                    ("tumour-ct", "Tumour (CT)"),
                ],
                default="tumour-mri",
                max_length=100,
            ),
        ),
        migrations.RunPython(existing_versions_answer_tumour_mri, migrations.RunPython.noop),
    ]
