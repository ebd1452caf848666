"""Small helpers for reading configuration from the environment."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, *, default: bool) -> bool:
    """Read a boolean environment variable (unset or blank: `default`); refuse anything else."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of {sorted(_TRUE | _FALSE)}, not {raw!r}")


def _env_number(name: str, kind: type, default, minimum):
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return kind(default)
    noun = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {noun}, not {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):  # nan, inf
        raise ImproperlyConfigured(f"{name} must be a finite number, not {raw!r}")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def env_int(name: str, *, default: int, minimum: int | None = 0) -> int:
    """Read a whole-number environment variable (unset or blank: `default`)."""
    return _env_number(name, int, default, minimum)


def env_float(name: str, *, default: float, minimum: float | None = 0) -> float:
    """Read a number (seconds, usually) from the environment (unset or blank: `default`)."""
    return _env_number(name, float, default, minimum)


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")


def env_rate(name: str, *, default: str) -> str:
    """A throttle rate for DRF, `<requests>/<second|minute|hour|day>` (`600/minute`)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    match = _RATE.match(raw)
    if match is None or int(match.group(1)) < 1:
        raise ImproperlyConfigured(
            f"{name} must be a rate like 600/minute (requests per second, minute, hour or day), "
            f"not {raw!r}"
        )
    return f"{int(match.group(1))}/{match.group(2)}"


def env_choice(name: str, *, default: str, choices: tuple[str, ...], upper: bool = False) -> str:
    """One of `choices`, compared in lower case (upper with `upper`); unset or blank: `default`."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().upper() if upper else raw.strip().lower()
    if value not in choices:
        shown = [c for c in choices if c]
        raise ImproperlyConfigured(f"{name} must be one of {shown}, not {raw!r}")
    return value


def env_currency(name: str, *, default: str) -> str:
    """An ISO 4217 currency code: three letters, kept in upper case."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ImproperlyConfigured(
            f"{name} must be a three-letter currency code (EUR), not {raw!r}"
        )
    return value


def env_list(name: str, *, default: str) -> list[str]:
    """Read a comma-separated environment variable."""
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def load_secret(name: str, fallback_file: Path) -> str:
    """
    Return the secret named by an environment variable.

    Without the variable, a random secret is generated once and kept in
    `fallback_file` inside the data directory (mode 0600), so a development
    machine keeps its sessions and tokens across restarts while no secret ever
    lives in the repository. Production sets the variable.
    """
    value = os.environ.get(name)
    if value:
        return value
    try:
        return fallback_file.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48)
    fallback_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(fallback_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return fallback_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
