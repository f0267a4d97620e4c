"""The web server as `make run` and docker-compose start it (brainscan/gunicorn.conf.py): uploads in
progress hold a thread each, never the whole server, so the pages keep answering."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.services import free_port, standalone_env, terminate
from tests.waiting import wait_for

GUNICORN = Path(sys.executable).with_name("gunicorn")


def _get(port, path, timeout):
    """The status line of a GET, or None when the server does not answer in time."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
            client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            return client.recv(64).split(b"\r\n", 1)[0].decode()
    except OSError:
        return None


@pytest.fixture
def web_server(tmp_path):
    port = free_port()
    env = standalone_env(tmp_path)
    command = [str(GUNICORN), "-c", "brainscan/gunicorn.conf.py", "brainscan.wsgi"]
    command += ["--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null"]
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env)  # noqa: S603
    try:
        wait_for(lambda: _get(port, "/api/v1/cases/", timeout=5), timeout=60, message="gunicorn to answer")
        yield port
    finally:
        terminate(server, timeout=40)


def _start_slow_upload(port):
    """A multipart upload whose body arrives slowly: the request holds its worker or thread.
    With a CSRF cookie and no token header, the CSRF check reads the form, so it waits for the body."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    boundary = "slowupload"
    head = (
        f"POST /cases/1/scans/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken={'a' * 32}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 10000000\r\n\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n'
    )
    client.sendall(head.encode() + b"\xff\xd8\xff" + bytes(1000))
    return client


def test_pages_answer_while_uploads_are_in_progress(web_server):
    """Two uploads at once used to take both sync workers; everyone else waited for them."""
    uploads = [_start_slow_upload(web_server) for _ in range(4)]
    try:
        time.sleep(0.5)  # let the server hand each upload to a worker; nothing to poll for
        started = time.monotonic()
        # The case list without a session: 401 from the whole middleware stack, no static files needed.
        status = _get(web_server, "/api/v1/cases/", timeout=10)
        assert status == "HTTP/1.1 401 Unauthorized", f"no answer while uploads were in progress: {status}"
        assert time.monotonic() - started < 10
        for client in uploads:  # still waiting for their bodies: they hold their threads
            client.setblocking(False)
            with pytest.raises(BlockingIOError):
                client.recv(1)
    finally:
        for client in uploads:
            client.close()
