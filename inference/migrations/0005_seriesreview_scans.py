# A series review answers only for the slices its verdict judged when it was recorded.

from django.db import migrations, models


def record_coverage(apps, schema_editor):
    """Reviews recorded before coverage was kept: the slices their verdict judges now that had
    arrived by the time of the review (a slice that came later was seen by no one)."""
    SeriesReview = apps.get_model("inference", "SeriesReview")
    Scan = apps.get_model("cases", "Scan")
    for review in SeriesReview.objects.select_related("verdict").iterator():
        covered = Scan.objects.filter(pk__in=review.verdict.scan_ids, uploaded_at__lte=review.created_at)
        review.scans.set(covered)


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0019_study_join_key"),
        ("inference", "0004_series_verdicts"),
    ]

    operations = [
        migrations.AddField(
            model_name="seriesreview",
            name="scans",
            field=models.ManyToManyField(blank=True, related_name="series_reviews", to="cases.scan"),
        ),
        migrations.RunPython(record_coverage, migrations.RunPython.noop),
    ]
