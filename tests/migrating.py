"""Data-migration tests: migrate the test database to a named state and back to the latest, and
the rows an old database would hold (a doctor, a team, a case and one scan)."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets):
    """Migrate to targets ([(app, migration)]) and return the apps registry of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def migrate_to_latest():
    return migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def old_scan(apps, **fields):
    """One scan, in its own case and team, uploaded by "dr-a", in the historical models of apps."""
    user = apps.get_model("auth", "User").objects.create(username="dr-a")
    team = apps.get_model("cases", "Team").objects.create(name="Neuro A")
    case = apps.get_model("cases", "Case").objects.create(pseudonym="C-1", team=team, created_by=user)
    return apps.get_model("cases", "Scan").objects.create(
        case=case, sha256="0" * 64, width=1, height=1, uploaded_by=user, **fields
    )
