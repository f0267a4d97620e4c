"""gunicorn as `make run`, docker-compose.yml and the Dockerfile start it: with
brainscan/gunicorn.conf.py."""

import sys

import requests

from tests.services import ChildProcess, child_env, free_port
from tests.waiting import wait_for


def test_gunicorn_opens_no_control_socket_at_a_path_shared_by_every_instance(db, tmp_path):
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    port = free_port()
    env = child_env("", HOME=str(home), XDG_RUNTIME_DIR=str(runtime))
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "brainscan.wsgi",
        "-c",
        "brainscan/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
    ]
    web = ChildProcess(argv, env, tmp_path / "gunicorn.log")
    try:

        def answers():
            assert web.process.poll() is None, web.log()
            try:
                return requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        # The control socket is opened right after the workers are started, before one answers.
        wait_for(answers, timeout=60, message="gunicorn to answer")
        sockets = [*home.rglob("*.ctl"), *runtime.rglob("*.ctl")]
        assert sockets == [], web.log()
    finally:
        web.close()
