"""Typed readers for environment variables; a bad value stops start-up with a clear message."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_UNSET = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name, default):
    value = os.environ.get(name)
    if value is None:
        if default is _UNSET:
            raise ImproperlyConfigured(f"Set the environment variable {name}.")
        return None
    return value


def env_str(name, default=_UNSET):
    value = _raw(name, default)
    return default if value is None else value


def env_bool(name, default=_UNSET):
    value = _raw(name, default)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_int(name, default=_UNSET, minimum=None):
    value = _raw(name, default)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}.")
    return number


def env_list(name, default=_UNSET):
    value = _raw(name, default)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_secret(name, default=_UNSET, fallback_file=None):
    """Read a secret from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets),
    or else from ``fallback_file`` if it exists (the key `make` generates under var/). Nothing
    is ever generated here: with none of the three, start-up stops."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return _read_secret_file(f"{name}_FILE={path!r}", path)
    if name not in os.environ and fallback_file is not None:
        if Path(fallback_file).exists():
            return _read_secret_file(f"{fallback_file} (for {name})", fallback_file)
        if default is _UNSET:
            raise ImproperlyConfigured(
                f"Set the environment variable {name} (or {name}_FILE), or create {fallback_file} "
                "(`make run` generates it)."
            )
    value = _raw(name, default)
    if value is None:
        return default
    if not value.strip():
        raise ImproperlyConfigured(f"{name} is set but empty.")
    return value


def _read_secret_file(what, path):
    try:
        secret = Path(path).read_text().strip()
    except OSError as error:
        raise ImproperlyConfigured(f"{what} cannot be read: {error}") from None
    if not secret:
        raise ImproperlyConfigured(f"{what} is empty.")
    return secret


def ensure_local_keys(var_dir: Path, names) -> None:
    """Create, as `make` does (urlsafe random, owner-only), each ``var_dir/<name lowercased>`` key
    that is missing and that neither NAME nor NAME_FILE provides. Only manage.py calls it, and only
    for a checkout's own var/: settings never invent a secret."""
    import secrets

    for name in names:
        path = Path(var_dir) / name.lower()
        if name in os.environ or f"{name}_FILE" in os.environ or path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key:
            key.write(secrets.token_urlsafe(48) + "\n")
