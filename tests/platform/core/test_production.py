"""
Production settings from the environment: HTTPS switches that satisfy
`manage.py check --deploy`, and secrets that are long enough and distinct.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from cleave.core.env import proxy_ssl_header, require_strong_secrets
from cleave.testing import unit

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# the warnings the HTTPS switches answer: HSTS, SSL redirect, secure session and CSRF cookies
HTTPS_WARNINGS = ("security.W004", "security.W008", "security.W012", "security.W016")


def production_env(tmp_path, **overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST")) and key != "CLEAVE_DATA_DIR"
    }
    env.update(
        {
            "CLEAVE_DATA_DIR": str(tmp_path),
            "DJANGO_DEBUG": "off",
            "DJANGO_ALLOWED_HOSTS": "shop.example.com",
            "DJANGO_SECRET_KEY": secrets.token_hex(32),
            "CLEAVE_JWT_SECRET": secrets.token_hex(32),
            "CLEAVE_SERVICE_JWT_SECRET": secrets.token_hex(32),
            "DJANGO_SECURE_COOKIES": "on",
            "DJANGO_SECURE_HSTS_SECONDS": "31536000",
            "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "on",
            "DJANGO_SECURE_HSTS_PRELOAD": "on",
            "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "DJANGO_SECURE_SSL_REDIRECT": "on",
        }
    )
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_finds_no_https_warning_in_production(tmp_path):
    result = manage("check", "--deploy", env=production_env(tmp_path))

    assert result.returncode == 0, result.stderr
    found = re.findall(r"security\.W\d+", result.stdout + result.stderr)
    assert [warning for warning in found if warning in HTTPS_WARNINGS] == []


def test_the_https_switches_are_off_by_default(tmp_path):
    env = production_env(tmp_path)
    for name in list(env):
        if name.startswith("DJANGO_SECURE_"):
            del env[name]

    result = manage("check", "--deploy", env=env)

    found = set(re.findall(r"security\.W\d+", result.stdout + result.stderr))
    assert found >= set(HTTPS_WARNINGS)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"DJANGO_SECRET_KEY": "too-short-for-a-signing-key"},
            "DJANGO_SECRET_KEY must be at least 50 characters long, not 27",
        ),
        (
            {
                "CLEAVE_SERVICE_JWT_SECRET": "same-" + "x" * 60,
                "CLEAVE_JWT_SECRET": "same-" + "x" * 60,
            },
            "CLEAVE_JWT_SECRET and CLEAVE_SERVICE_JWT_SECRET must differ",
        ),
    ],
    ids=["short", "shared"],
)
def test_a_weak_secret_stops_the_process_naming_it(tmp_path, overrides, message):
    strong = manage("check", env=production_env(tmp_path))
    result = manage("check", env=production_env(tmp_path, **overrides))

    # the same process with long, distinct secrets starts: only the weak one stops it
    assert strong.returncode == 0, strong.stderr
    assert result.returncode == 2
    assert result.stderr.startswith("Configuration error: ")
    assert message in result.stderr
    assert "x" * 20 not in result.stderr  # the value itself is never shown
    assert "Traceback" not in result.stderr


def test_a_developer_with_debug_on_may_use_a_short_secret(tmp_path):
    env = production_env(tmp_path, DJANGO_DEBUG="on", DJANGO_SECRET_KEY="dev")

    assert manage("check", env=env).returncode == 0


@pytest.mark.parametrize(
    ("secrets_by_name", "message"),
    [
        ({"A": ("a" * 49, 50)}, "A must be at least 50 characters long, not 49"),
        ({"A": ("", 32)}, "A must be at least 32 characters long, not 0"),
        ({"A": ("k" * 50, 50), "B": ("j" * 32, 32), "C": ("k" * 50, 32)}, "A and C must differ"),
    ],
)
def test_weak_secrets_are_refused(secrets_by_name, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        require_strong_secrets(secrets_by_name)


def test_strong_distinct_secrets_pass():
    require_strong_secrets({"A": ("a" * 50, 50), "B": ("b" * 32, 32)})


def test_the_proxy_header_is_read_as_django_wants_it(monkeypatch):
    monkeypatch.setenv("DJANGO_SECURE_PROXY_SSL_HEADER", " X-Forwarded-Proto ")
    assert proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER") == (
        "HTTP_X_FORWARDED_PROTO",
        "https",
    )
    monkeypatch.setenv("DJANGO_SECURE_PROXY_SSL_HEADER", "")
    assert proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER") is None
    monkeypatch.setenv("DJANGO_SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https")
    with pytest.raises(ImproperlyConfigured, match="must be a header name"):
        proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER")


@unit
def test_the_redirect_to_https_spares_the_probes_and_the_scraper(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    plain = client.get("/api/catalog/categories")
    behind_tls = client.get("/api/catalog/categories", headers={"X-Forwarded-Proto": "https"})
    health = client.get("/health")
    metrics = client.get("/metrics")

    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/api/catalog/categories"
    assert behind_tls.status_code == 200
    assert health.status_code == 200
    assert metrics.status_code != 301
