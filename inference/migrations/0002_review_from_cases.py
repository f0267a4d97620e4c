"""Review, moved here from cases (issue 21), keeps its table and rows.

First a state-only CreateModel naming the existing table cases_review (cases.0010 has just
dropped the model from its own state, so the table is never created or dropped), then an
AlterModelTable that renames it to inference_review: the table's name then says which app owns
it, as every other table's does. The rename is one ALTER TABLE ... RENAME on SQLite and
PostgreSQL; no row is copied and the foreign keys to prediction and user follow the table.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0001_initial"),
        ("cases", "0010_review_moves_to_inference"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Review",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "decision",
                            models.CharField(
                                choices=[("confirmed", "Confirmed"), ("corrected", "Corrected")], max_length=16
                            ),
                        ),
                        ("label", models.CharField(max_length=64)),
                        ("comment", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "prediction",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="reviews",
                                to="inference.prediction",
                            ),
                        ),
                        (
                            "reviewer",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="reviews",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"ordering": ["created_at", "id"], "db_table": "cases_review"},
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="review", table=None),
    ]
