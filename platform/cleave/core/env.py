"""Readers of environment variables: typed, checked, a clear error for a bad value."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _given(name: str) -> str | None:
    """The variable's value without surrounding space; None when unset or blank (the default)."""
    raw = os.environ.get(name)
    return raw.strip() if raw is not None and raw.strip() else None


def env_bool(name: str, *, default: bool) -> bool:
    """Read a boolean environment variable (unset or blank: `default`); refuse anything else."""
    raw = _given(name)
    if raw is None:
        return default
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of {sorted(_TRUE | _FALSE)}, not {os.environ[name]!r}"
    )


def _env_number(name: str, kind: type, default, minimum):
    raw = _given(name)
    if raw is None:
        # None: unset, for a reader that knows the default (a pool's, by vendor)
        return None if default is None else kind(default)
    noun = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {noun}, not {os.environ[name]!r}") from None
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a finite number, not {os.environ[name]!r}")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {os.environ[name]!r}")
    return value


def env_int(name: str, *, default: int | None, minimum: int | None = 0) -> int | None:
    """Read a whole-number environment variable (unset or blank: `default`)."""
    return _env_number(name, int, default, minimum)


def env_float(name: str, *, default: float | None, minimum: float | None = 0) -> float | None:
    """Read a number (seconds, usually) from the environment (unset or blank: `default`)."""
    return _env_number(name, float, default, minimum)


_RATE = re.compile(r"^(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_rate(name: str, *, default: str) -> str:
    """A throttle rate for DRF, `<requests>/<second|minute|hour|day>` (`600/minute`)."""
    raw = _given(name)
    if raw is None:
        return default
    match = _RATE.match(raw)
    if match is None or int(match.group(1)) < 1:
        raise ImproperlyConfigured(
            f"{name} must be a rate like 600/minute (requests per second, minute, hour or day), "
            f"not {os.environ[name]!r}"
        )
    return f"{int(match.group(1))}/{match.group(2)}"


def env_choice(name: str, *, default: str, choices: tuple[str, ...], upper: bool = False) -> str:
    """One of `choices`, compared in lower case (upper with `upper`); unset or blank: `default`."""
    raw = _given(name)
    if raw is None:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise ImproperlyConfigured(
            f"{name} must be one of {list(choices)}, not {os.environ[name]!r}"
        )
    return value


def env_currency(name: str, *, default: str) -> str:
    """An ISO 4217 currency code: three letters, kept in upper case."""
    raw = _given(name)
    if raw is None:
        return default
    value = raw.upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ImproperlyConfigured(
            f"{name} must be a three-letter currency code (EUR), not {os.environ[name]!r}"
        )
    return value


def env_list(name: str, *, default: str) -> list[str]:
    """Read a comma-separated environment variable."""
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str, *, default: str) -> list:
    """Comma-separated networks in CIDR form (`10.0.0.0/8,::1/128`); a bad one stops the process."""
    raw = _given(name)
    networks = []
    for item in (raw if raw is not None else default).split(","):
        if not item.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must list networks like 10.0.0.0/8,::1/128, not {os.environ[name]!r}"
            ) from None
    return networks


def env_proxies(name: str, *, default: str) -> int | tuple:
    """
    The proxies in front of this process whose `X-Forwarded-For` entries are
    believed: a number of hops (`1`), or their networks (`10.0.0.0/8,::1/128`).
    `0`, unset or blank: none (the peer's address is the client's).
    """
    raw = _given(name)
    text = raw if raw is not None else default
    if text.isdigit():
        return int(text)
    try:
        return tuple(env_networks(name, default=default))
    except ImproperlyConfigured:
        raise ImproperlyConfigured(
            f"{name} must be a number of proxies (1) or their networks like "
            f"10.0.0.0/8,::1/128, not {os.environ[name]!r}"
        ) from None


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


def env_str(name: str, *, default: str = "") -> str:
    """A string (surrounding space dropped); unset or blank: `default`."""
    raw = _given(name)
    return default if raw is None else raw


_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """
    Django's `SECURE_PROXY_SSL_HEADER` from a header name (`X-Forwarded-Proto`):
    a request is secure when the proxy set that header to `https`. Unset or
    blank: None (no proxy is trusted to say so).
    """
    raw = _given(name)
    if raw is None:
        return None
    if not _HEADER_NAME.match(raw):
        raise ImproperlyConfigured(
            f"{name} must be a header name like X-Forwarded-Proto, not {os.environ[name]!r}"
        )
    return "HTTP_" + raw.upper().replace("-", "_"), "https"


def require_strong_secrets(secrets_by_name: dict[str, tuple[str, int]]) -> None:
    """
    Refuse to start with a secret shorter than its minimum, or with one value
    given to two secrets. `secrets_by_name` maps each variable to its value and
    minimum length; the error names the variables, never the values.
    """
    for name, (value, minimum) in secrets_by_name.items():
        if len(value) < minimum:
            raise ImproperlyConfigured(
                f"{name} must be at least {minimum} characters long, not {len(value)} "
                f"(make one with: python -c 'import secrets; print(secrets.token_hex(32))')"
            )
    names_by_value: dict[str, list[str]] = {}
    for name, (value, _minimum) in secrets_by_name.items():
        names_by_value.setdefault(value, []).append(name)
    for names in names_by_value.values():
        if len(names) > 1:
            raise ImproperlyConfigured(
                f"{' and '.join(names)} must differ: each secret needs its own value"
            )
