"""Tasks arrive without losing data: registered versions become tumour-mri (one active), and
scans refused as "not_mri" read as wrong_modality."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("cases", "0012_user_time_zone_preference"), ("inference", "0002_review_from_cases")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_existing_versions_and_refused_scans_migrate_to_tasks():
    try:
        old = _migrate(BEFORE)
        User = old.get_model("auth", "User")
        user = User.objects.create(username="dr-a")
        team = old.get_model("cases", "Team").objects.create(name="Neuro A")
        case = old.get_model("cases", "Case").objects.create(pseudonym="C-1", team=team, created_by=user)
        scan = old.get_model("cases", "Scan").objects.create(
            case=case, sha256="0" * 64, width=1, height=1, uploaded_by=user, outcome="not_mri"
        )
        versions = old.get_model("inference", "ModelVersion").objects
        versions.create(name="bt", version="1", task="brain-tumour", path="bt/1", is_active=True)
        versions.create(name="bt", version="2", task="brain-tumour", path="bt/2")

        new = _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

        ModelVersion = new.get_model("inference", "ModelVersion")
        assert list(ModelVersion.objects.order_by("version").values_list("task", "is_active")) == [
            ("tumour-mri", True),
            ("tumour-mri", False),
        ]
        migrated_case = new.get_model("cases", "Case").objects.get(pk=case.pk)
        migrated_scan = new.get_model("cases", "Scan").objects.get(pk=scan.pk)
        assert (migrated_case.task, migrated_scan.outcome, migrated_scan.task) == (
            "tumour-mri",
            "wrong_modality",
            "",
        )
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
