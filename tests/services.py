"""Real services for the tests about failures: a disposable Redis that can go down and come back,
a disposable Orthanc (PACS), and real worker and web processes (their own interpreters) on the
test database."""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from tests.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A redis-server of our own on a free loopback port, without persistence: stop() is a broker
    outage (queued messages are gone, as with a Redis that restarts without a disk), start() the
    recovery on the same port."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)

    def is_up(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def start(self):
        argv = [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        wait_for(self.is_up, timeout=15, message=f"redis-server on port {self.port}")

    def stop(self):
        """An outage: the port refuses connections."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server must hear the terminate
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None

    def freeze(self):
        """A hung server: the kernel accepts connections, nothing ever answers."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.process.send_signal(signal.SIGCONT)

    def queue_length(self, queue=None) -> int:
        return self.client().llen(queue or settings.CELERY_TASK_DEFAULT_QUEUE)


# Where Debian's orthanc and orthanc-dicomweb packages put the server and the DICOMweb plugin.
ORTHANC_BINARY_CANDIDATES = ("Orthanc", "/usr/sbin/Orthanc")
ORTHANC_DICOMWEB_PLUGINS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)


def orthanc_missing() -> str | None:
    """Why a disposable Orthanc cannot be started here, or None when it can."""
    if not any(shutil.which(name) for name in ORTHANC_BINARY_CANDIDATES):
        return "Orthanc is not installed (Debian packages orthanc, orthanc-dicomweb: make pacs-tools)"
    if not any(Path(path).is_file() for path in ORTHANC_DICOMWEB_PLUGINS):
        return "Orthanc's DICOMweb plugin is not installed (Debian package orthanc-dicomweb: make pacs-tools)"
    return None


class OrthancServer:
    """An Orthanc of our own: HTTP on a free loopback port, storage in a temporary directory,
    DICOMweb on, authentication with a generated user, remote access and the DICOM port off.
    stop() is a PACS outage (refused connections), freeze() a PACS that accepts and never answers."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.user = "brainscan-test"
        self.password = secrets.token_urlsafe(16)
        self.process = None
        # DICOMweb servers this Orthanc may send studies to (its STOW-RS client), by name.
        self.dicomweb_servers = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict:
        storage = str(self.directory / "storage")
        return {
            "Name": "brainscan-test",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "Plugins": [next(path for path in ORTHANC_DICOMWEB_PLUGINS if Path(path).is_file())],
            "HttpServerEnabled": True,
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.user: self.password},
            "DicomServerEnabled": False,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "HttpCompressionEnabled": False,
            "SaveJobs": False,
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": False,
                "Servers": self.dicomweb_servers,
            },
        }

    def is_up(self) -> bool:
        import requests

        try:
            answer = requests.get(f"{self.url}/system", auth=(self.user, self.password), timeout=1)
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def start(self):
        config = self.directory / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=2))
        binary = next(found for name in ORTHANC_BINARY_CANDIDATES if (found := shutil.which(name)))
        with open(self.directory / "orthanc.log", "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [binary, str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def answers():
            if self.process.poll() is not None:
                log = (self.directory / "orthanc.log").read_text(errors="replace")
                raise AssertionError(f"Orthanc exited ({self.process.returncode}):\n{log[-3000:]}")
            return self.is_up()

        wait_for(answers, timeout=30, message=f"Orthanc on port {self.port}")

    def stop(self):
        """An outage, as a crash: the port refuses connections. (SIGKILL: Orthanc's orderly
        shutdown takes seconds, and its storage is disposable.)"""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None

    def freeze(self):
        """A hung PACS: the kernel accepts connections, nothing ever answers."""
        self.process.send_signal(signal.SIGSTOP)
        # The signal is delivered asynchronously: a request sent at once may still be answered.
        wait_for(lambda: _process_state(self.process.pid) == "T", timeout=5, message="Orthanc to stop")

    def thaw(self):
        self.process.send_signal(signal.SIGCONT)


def test_database_url() -> str:
    """The test database as DATABASE_URL, for processes started by a test."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{credentials}@{host}/{db['NAME']}"


def child_env(broker_url: str, **extra) -> dict:
    """Environment for a web or worker process on the test database, media and queue."""
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "brainscan.settings.test",
        "DATABASE_URL": test_database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ML_MODELS_ROOT": str(settings.ML_MODELS_ROOT),
        "REDIS_URL": broker_url,
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    return env | extra


def standalone_env(var_dir: Path, **extra) -> dict:
    """Environment for a process on the production settings with its own SQLite database and
    file-system broker under var_dir (no Redis), as `make run` starts one on a laptop."""
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "brainscan.settings.base",
        "SECRET_KEY": "test-only",
        "PATIENT_REF_KEY": "test-only",
        "BRAINSCAN_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'db.sqlite3'}",
        "CELERY_BROKER_DIR": str(var_dir / "broker"),
    }
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    return env | extra


def terminate(process: subprocess.Popen, timeout: float):
    """SIGTERM, then SIGKILL if the process has not ended within timeout seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _process_state(pid):
    """The state letter of a process (R, S, Z...), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_alive(pid) -> bool:
    return _process_state(pid) not in (None, "Z", "X")


def children_of(pid) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return children


class ChildProcess:
    """A process in a session of its own, its output in a log file; close() kills its whole group,
    including children its main process left behind."""

    def __init__(self, argv, env, log_path: Path):
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        return children_of(self.pid)

    def kill(self):
        """SIGKILL the main process alone, as the OOM killer or `kill -9` would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=15)

    def close(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=15)


def start_worker(tmp_path: Path, broker_url: str, name="crash", stall_while: Path | None = None, beat=False):
    """A real `celery worker` (prefork, one pool process) on the test database and `broker_url`.

    With ``stall_while``, classifications wait while that file exists (tests/stalled_worker.py),
    so a test can kill the worker with a scan in flight.
    """
    entry = ["-m", "tests.stalled_worker"] if stall_while else ["-m", "celery"]
    argv = [sys.executable, *entry, "-A", "brainscan", "worker", "-n", f"{name}@%h", "--concurrency", "1"]
    argv += ["--loglevel", "INFO", "--without-mingle", "--without-gossip"]
    if beat:
        argv += ["--beat", "--schedule", str(tmp_path / f"{name}-beat-schedule")]
    extra = {"STALL_WHILE_EXISTS": str(stall_while)} if stall_while else {}
    log = tmp_path / f"{name}-worker-{len(list(tmp_path.glob(f'{name}-worker-*.log')))}.log"
    return ChildProcess(argv, child_env(broker_url, **extra), log)


def wait_until_ready(worker: ChildProcess, timeout=120):
    """Wait for the worker's "ready." line: its pool is started and it consumes from the queue."""

    def ready():
        if worker.process.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.process.returncode}):\n{worker.log()[-3000:]}")
        return " ready." in worker.log()

    wait_for(ready, timeout=timeout, message="the worker to be ready")
