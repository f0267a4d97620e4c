"""Environment helpers: bad values and missing secrets stop start-up with a clear message."""

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
