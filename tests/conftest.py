"""Shared fixtures: owner, teammate, outsider, steward; data paths; the real Celery worker; a
disposable Redis."""

import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from cases.roles import ensure_groups, pacs_group

from .factories import CaseFactory, MembershipFactory, TeamFactory, UserFactory
from .services import RedisServer

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
TUMOUR_TRAINING = SHARED_DATASETS / "brain-tumor-mri" / "Training"


def real_mri_images(count, classes=("glioma", "meningioma", "notumor", "pituitary")):
    """Real MRI files from ../shared, spread over classes; skips the test if they are absent."""
    if not TUMOUR_TRAINING.is_dir():
        pytest.skip(f"real MRI images not found at {TUMOUR_TRAINING}")
    per_class = [sorted((TUMOUR_TRAINING / name).glob("*.jpg")) for name in classes]
    images = []
    for index in range(count):
        files = per_class[index % len(per_class)]
        images.append(files[(index // len(per_class)) * 37 % len(files)])
    return images


def model_available():
    root = Path(settings.ML_MODELS_ROOT)
    if not any(root.glob("*/*/model.json")):
        return False, f"no trained model card under {root}"
    return True, ""


@pytest.fixture
def require_model():
    available, reason = model_available()
    if not available:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def close_thread_connections(django_db_setup, django_db_blocker):
    """Threads in the worker and live-server tests hold their own connections; on PostgreSQL
    end them before the test database is dropped (this finalizer runs first)."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def team(db):
    return TeamFactory(name="Neuro A")


@pytest.fixture
def other_team(db):
    return TeamFactory(name="Neuro B")


def _clinician(username, team):
    user = UserFactory(username=username)
    user.groups.add(ensure_groups()[0])
    MembershipFactory(user=user, team=team)
    return user


@pytest.fixture
def owner(team):
    return _clinician("owner", team)


@pytest.fixture
def teammate(team):
    return _clinician("teammate", team)


@pytest.fixture
def outsider(other_team):
    return _clinician("outsider", other_team)


@pytest.fixture
def steward(db):
    user = UserFactory(username="steward", is_staff=True)
    user.groups.add(ensure_groups()[1])
    return user


@pytest.fixture
def pacs_account(team):
    """The team's PACS account as adduser --role pacs makes it: no password, one team."""
    user = UserFactory(username="orthanc-push", password=None)
    user.groups.add(pacs_group())
    MembershipFactory(user=user, team=team)
    return user


@pytest.fixture
def case(owner, team):
    return CaseFactory(team=team, created_by=owner)


@pytest.fixture
def client_for():
    def make(user):
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def owner_client(client_for, owner):
    return client_for(owner)


@pytest.fixture
def running_worker(transactional_db, close_thread_connections):
    """A real Celery worker (in a thread) on the configured broker: Redis when REDIS_URL is set."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connections

    from brainscan.celery import app

    def close_connections(**kwargs):
        connections.close_all()

    task_postrun.connect(close_connections, weak=False)
    try:
        with start_worker(
            app, pool="solo", perform_ping_check=False, shutdown_timeout=60, loglevel="WARNING"
        ) as worker:
            yield worker
    finally:
        task_postrun.disconnect(close_connections)
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


@pytest.fixture
def celery_worker(require_model, transactional_db):
    """The real worker with the model registry synced from ml/models/ (skips without a model)."""
    from inference.registry import sync_registry

    sync_registry()
    return "registry synced"


@pytest.fixture
def classifying_worker(celery_worker, running_worker):
    return running_worker


@pytest.fixture
def disposable_redis(tmp_path):
    """A redis-server of this test's own (not the shared one), to stop and start: an outage."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
