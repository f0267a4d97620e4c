"""Review moves to the inference app, beside the Prediction it belongs to (issue 21).

State only: cases forgets the model here and inference.0002_review_from_cases takes it over
with its existing table and rows, which that migration then renames to inference_review.
No row is copied, so the reviews of an existing database stay exactly as they are.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0009_audit_refused_verb"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Review")],
            database_operations=[],
        ),
    ]
