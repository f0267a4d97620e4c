"""Tasks arrive without losing data: registered versions become tumour-mri (one active), and
scans refused as "not_mri" read as wrong_modality."""

import pytest

from tests.migrating import migrate, migrate_to_latest, old_scan

BEFORE = [("cases", "0012_user_time_zone_preference"), ("inference", "0002_review_from_cases")]


@pytest.mark.django_db(transaction=True)
def test_existing_versions_and_refused_scans_migrate_to_tasks():
    try:
        old = migrate(BEFORE)
        scan = old_scan(old, outcome="not_mri")
        versions = old.get_model("inference", "ModelVersion").objects
        versions.create(name="bt", version="1", task="brain-tumour", path="bt/1", is_active=True)
        versions.create(name="bt", version="2", task="brain-tumour", path="bt/2")

        new = migrate_to_latest()

        ModelVersion = new.get_model("inference", "ModelVersion")
        assert list(ModelVersion.objects.order_by("version").values_list("task", "is_active")) == [
            ("tumour-mri", True),
            ("tumour-mri", False),
        ]
        migrated_case = new.get_model("cases", "Case").objects.get(pk=scan.case_id)
        migrated_scan = new.get_model("cases", "Scan").objects.get(pk=scan.pk)
        assert (migrated_case.task, migrated_scan.outcome, migrated_scan.task) == (
            "tumour-mri",
            "wrong_modality",
            "",
        )
    finally:
        migrate_to_latest()
