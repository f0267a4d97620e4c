"""Review moved from cases to inference (issue 21) without losing a row: a database migrated up
to the old layout, with a review in it, migrates forward and the review is there."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("cases", "0009_audit_refused_verb"), ("inference", "0001_initial")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_an_existing_review_survives_the_move_to_inference():
    try:
        old = _migrate(BEFORE)
        User = old.get_model("auth", "User")
        user = User.objects.create(username="dr-a")
        team = old.get_model("cases", "Team").objects.create(name="Neuro A")
        case = old.get_model("cases", "Case").objects.create(pseudonym="C-1", team=team, created_by=user)
        scan = old.get_model("cases", "Scan").objects.create(
            case=case, sha256="0" * 64, width=1, height=1, uploaded_by=user
        )
        version = old.get_model("inference", "ModelVersion").objects.create(
            name="brain-tumour", version="1", task="brain-tumour", path="brain-tumour/1"
        )
        prediction = old.get_model("inference", "Prediction").objects.create(
            scan=scan, model_version=version, label="glioma", confidence=0.9, latency_ms=1.0
        )
        old.get_model("cases", "Review").objects.create(
            prediction=prediction, reviewer=user, decision="corrected", label="meningioma", comment="edge"
        )

        new = _migrate(_latest())

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
        _migrate(_latest())
