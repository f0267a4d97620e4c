"""Test settings: fast hashing, temporary media and broker folders, real services when configured."""

import os
import tempfile
import uuid

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("PATIENT_REF_KEY", "test-only-patient-reference-key")
_tmp = tempfile.mkdtemp(prefix="brainscan-test-")
os.environ.setdefault("MEDIA_ROOT", os.path.join(_tmp, "media"))
os.environ.setdefault("CELERY_BROKER_DIR", os.path.join(_tmp, "broker"))
# A queue of its own per test session, so a shared Redis never hands us someone else's messages.
os.environ.setdefault("CELERY_QUEUE", f"brainscan-test-{uuid.uuid4().hex[:12]}")

from .base import *  # noqa: E402,F403
from .base import DATABASES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: the in-thread Celery worker and live server open their own connections.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(_tmp, "test.sqlite3")}
ALLOWED_HOSTS = ["*"]
# The in-thread worker closes its connection after each task, so the test database can be dropped.
DATABASES["default"]["CONN_MAX_AGE"] = 0
STATIC_ROOT = os.path.join(_tmp, "static")
os.makedirs(STATIC_ROOT, exist_ok=True)
# Throttle counts per test process only; tests/api clears them between tests.
CACHES["api-throttle"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"}  # noqa: F405
# The in-thread test worker (solo pool) would lower the priority of the whole test process.
WORKER_NICE = 0
