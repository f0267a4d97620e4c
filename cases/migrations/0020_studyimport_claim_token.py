from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0019_study_join_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="studyimport",
            name="claim_token",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
    ]
