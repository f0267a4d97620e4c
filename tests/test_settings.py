"""Environment helpers: bad values and missing secrets stop start-up with a clear message."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from brainscan.settings.env import env_bool, env_int, env_list, env_secret


def test_missing_secret_without_default_is_improperly_configured(monkeypatch):
    monkeypatch.delenv("SOME_SECRET", raising=False)
    monkeypatch.delenv("SOME_SECRET_FILE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SOME_SECRET"):
        env_secret("SOME_SECRET")


def test_secret_is_read_from_file(monkeypatch, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cr3t\n")
    monkeypatch.setenv("SOME_SECRET_FILE", str(secret_file))
    assert env_secret("SOME_SECRET") == "s3cr3t"
    monkeypatch.setenv("SOME_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_secret("SOME_SECRET")


@pytest.mark.parametrize(
    "reader,value,message",
    [(env_bool, "maybe", "true or false"), (env_int, "ten", "integer"), (env_int, "-1", "at least 0")],
)
def test_bad_values_are_refused(monkeypatch, reader, value, message):
    monkeypatch.setenv("SOME_SETTING", value)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader("SOME_SETTING", 1, minimum=0) if reader is env_int else reader("SOME_SETTING", False)


def test_list_and_defaults(monkeypatch):
    monkeypatch.setenv("HOSTS", "a.example, b.example,")
    assert env_list("HOSTS") == ["a.example", "b.example"]
    monkeypatch.delenv("UNSET_FLAG", raising=False)
    assert env_bool("UNSET_FLAG", True) is True


def _compose_web_environment():
    """The web service's environment in docker-compose.yml with .env.example as its .env: its
    ${NAME:-default} references resolved the way compose does, secrets replaced by strong ones."""
    import re
    import secrets

    import yaml

    from tests.conftest import REPO_ROOT

    dotenv = {}
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            dotenv[name.strip()] = value.strip()
    dotenv |= {
        name: secrets.token_urlsafe(50) for name in ("SECRET_KEY", "PATIENT_REF_KEY", "POSTGRES_PASSWORD")
    }

    def resolve(value):
        return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: dotenv.get(m[1]) or m[2] or "", str(value))

    web = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["web"]
    assert web["env_file"] == ".env"
    return dotenv | {name: resolve(value) for name, value in web["environment"].items()}


def test_the_compose_stack_passes_the_deployment_check(tmp_path):
    """`manage.py check --deploy` with the web service's settings: HTTPS behind the proxy (no W004
    HSTS, no W008 SSL redirect), secure cookies. Left: W021, HSTS preload, a choice for whoever
    owns the domain (an internal hospital name cannot be preloaded)."""
    import os
    import re
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    environment = _compose_web_environment()
    assert environment["TRUSTED_PROXIES"] and environment["SECURE_PROXY_SSL_HEADER"] == "true"
    keep = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    # The stack's own paths exist only in its containers.
    environment |= {"BRAINSCAN_VAR_DIR": str(tmp_path), "MEDIA_ROOT": str(tmp_path / "media")}
    result = subprocess.run(  # noqa: S603  our own manage.py
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=REPO_ROOT,
        env=keep | environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(re.findall(r"\((\w+\.[EW]\d+)\)", result.stdout + result.stderr)) == {"security.W021"}


def test_https_settings_are_off_by_default_for_the_embedded_mode(settings):
    # `make run` serves http://127.0.0.1: a redirect to HTTPS or HSTS would lock the browser out.
    assert settings.SECURE_SSL_REDIRECT is False and settings.SECURE_HSTS_SECONDS == 0
    assert settings.SECURE_PROXY_SSL_HEADER is None


def test_secret_falls_back_to_the_generated_file_only_when_neither_variable_is_set(monkeypatch, tmp_path):
    generated = tmp_path / "secret_key"
    monkeypatch.delenv("SOME_SECRET", raising=False)
    monkeypatch.delenv("SOME_SECRET_FILE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="Set the environment variable SOME_SECRET .*make run"):
        env_secret("SOME_SECRET", fallback_file=generated)  # nothing is invented
    generated.write_text("from-make\n")
    assert env_secret("SOME_SECRET", fallback_file=generated) == "from-make"
    monkeypatch.setenv("SOME_SECRET", "from-env")
    assert env_secret("SOME_SECRET", fallback_file=generated) == "from-env"
    (tmp_path / "mounted").write_text("from-file")
    monkeypatch.setenv("SOME_SECRET_FILE", str(tmp_path / "mounted"))
    assert env_secret("SOME_SECRET", fallback_file=generated) == "from-file"


REPO_ROOT = Path(__file__).resolve().parent.parent


def _manage_check(var_dir):
    """`python manage.py check` as the README runs it: a clean environment, production settings."""
    clean = {"PATH": os.environ["PATH"], "BRAINSCAN_VAR_DIR": str(var_dir)}
    command = [sys.executable, "manage.py", "check"]
    return subprocess.run(command, cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=120)


def test_manage_py_finds_the_keys_make_generated_in_the_var_dir(tmp_path):
    (tmp_path / "secret_key").write_text("generated-secret-key\n")
    (tmp_path / "patient_ref_key").write_text("generated-patient-reference-key\n")
    proc = _manage_check(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no issues" in proc.stdout


def test_manage_py_without_a_secret_says_so_in_one_line(tmp_path):
    proc = _manage_check(tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Configuration error: Set the environment variable SECRET_KEY (or SECRET_KEY_FILE), "
        f"or create {tmp_path / 'secret_key'} (`make run` generates it)."
    ]


def test_manage_py_makes_a_checkouts_own_keys_as_make_does_and_never_replaces_one(tmp_path, monkeypatch):
    from brainscan.settings.env import ensure_local_keys

    for name in ("SECRET_KEY", "SECRET_KEY_FILE", "PATIENT_REF_KEY", "PATIENT_REF_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "patient_ref_key").write_text("kept\n")
    ensure_local_keys(tmp_path, ("SECRET_KEY", "PATIENT_REF_KEY"))
    secret = tmp_path / "secret_key"
    assert len(secret.read_text().strip()) >= 60 and secret.stat().st_mode & 0o077 == 0
    assert (tmp_path / "patient_ref_key").read_text() == "kept\n"  # a key in use is never replaced
    monkeypatch.setenv("OTHER_KEY", "from-env")
    ensure_local_keys(tmp_path, ("OTHER_KEY",))
    assert not (tmp_path / "other_key").exists()  # the environment provides it
