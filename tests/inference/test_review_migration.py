"""Review moved from cases to inference (issue 21) without losing a row: a database migrated up
to the old layout, with a review in it, migrates forward and the review is there."""

import pytest
from django.db import connection

from tests.migrating import migrate, migrate_to_latest, old_scan

BEFORE = [("cases", "0009_audit_refused_verb"), ("inference", "0001_initial")]


@pytest.mark.django_db(transaction=True)
def test_an_existing_review_survives_the_move_to_inference():
    try:
        old = migrate(BEFORE)
        scan = old_scan(old)
        user = scan.uploaded_by
        version = old.get_model("inference", "ModelVersion").objects.create(
            name="brain-tumour", version="1", task="brain-tumour", path="brain-tumour/1"
        )
        prediction = old.get_model("inference", "Prediction").objects.create(
            scan=scan, model_version=version, label="glioma", confidence=0.9, latency_ms=1.0
        )
        old.get_model("cases", "Review").objects.create(
            prediction=prediction, reviewer=user, decision="corrected", label="meningioma", comment="edge"
        )

        new = migrate_to_latest()

        Review = new.get_model("inference", "Review")
        assert Review._meta.db_table == "inference_review"
        assert list(
            Review.objects.values_list("prediction_id", "reviewer_id", "decision", "label", "comment")
        ) == [(prediction.pk, user.pk, "corrected", "meningioma", "edge")]
        assert "cases_review" not in connection.introspection.table_names()
        # The renamed table still numbers new rows after the old ones.
        added = Review.objects.create(prediction_id=prediction.pk, reviewer_id=user.pk, decision="confirmed")
        assert Review.objects.count() == 2 and added.pk > Review.objects.earliest("id").pk
    finally:
        migrate_to_latest()
