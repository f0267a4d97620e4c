"""The PACS settings and the stack's Orthanc: off by default, loopback only, credentials required."""

import os
import subprocess
import sys

import yaml

from tests.conftest import REPO_ROOT


def manage_check(tmp_path, **environment):
    (tmp_path / "secret_key").write_text("generated-secret-key\n")
    (tmp_path / "patient_ref_key").write_text("generated-patient-reference-key\n")
    clean = {"PATH": os.environ["PATH"], "BRAINSCAN_VAR_DIR": str(tmp_path)} | environment
    command = [sys.executable, "manage.py", "check"]
    return subprocess.run(command, cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=120)  # noqa: S603


def test_no_pacs_is_configured_by_default(settings):
    assert settings.PACS_URL == ""


def test_a_pacs_user_without_a_password_stops_start_up(tmp_path):
    proc = manage_check(tmp_path, PACS_URL="http://127.0.0.1:8042/dicom-web", PACS_USER="brainscan")

    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "Configuration error: PACS_USER is set: set PACS_PASSWORD (or PACS_PASSWORD_FILE) too."
    ]


def test_the_stacks_orthanc_is_optional_loopback_only_and_authenticated():
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    orthanc = services["orthanc"]

    assert orthanc["profiles"] == ["pacs"]  # `docker compose up` alone does not start it
    assert all(port.startswith("127.0.0.1:") for port in orthanc["ports"])
    environment = orthanc["environment"]
    assert environment["DICOM_WEB_PLUGIN_ENABLED"] == "true"
    assert environment["ORTHANC__AUTHENTICATION_ENABLED"] == "true"
    assert "${PACS_PASSWORD" in environment["ORTHANC__REGISTERED_USERS"]
    assert environment["ORTHANC__DICOM_SERVER_ENABLED"] == "false"
    assert "PACS_URL" not in services["web"]["environment"]  # off unless .env sets it
