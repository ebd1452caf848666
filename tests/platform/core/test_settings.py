"""Configuration from the environment: clear errors for bad values; database connection reuse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from cleave.core.databases import database_settings
from cleave.core.env import env_bool, env_choice, env_currency, env_float, env_int, env_rate
from cleave.testing import require_server

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_numbers_take_their_default_when_unset_or_blank(monkeypatch):
    monkeypatch.delenv("CLEAVE_PROBE", raising=False)
    assert env_int("CLEAVE_PROBE", default=30) == 30
    assert env_float("CLEAVE_PROBE", default=2) == 2.0
    assert isinstance(env_float("CLEAVE_PROBE", default=2), float)

    monkeypatch.setenv("CLEAVE_PROBE", "  ")
    assert env_int("CLEAVE_PROBE", default=30) == 30


def test_numbers_are_read_with_surrounding_space(monkeypatch):
    monkeypatch.setenv("CLEAVE_PROBE", " 45 ")
    assert env_int("CLEAVE_PROBE", default=30) == 45
    monkeypatch.setenv("CLEAVE_PROBE", "0.25")
    assert env_float("CLEAVE_PROBE", default=2) == 0.25


@pytest.mark.parametrize(
    ("reader", "raw", "message"),
    [
        (env_int, "thirty", "CLEAVE_PROBE must be a whole number, not 'thirty'"),
        (env_int, "1.5", "CLEAVE_PROBE must be a whole number, not '1.5'"),
        (env_int, "-1", "CLEAVE_PROBE must be at least 0, not '-1'"),
        (env_float, "fast", "CLEAVE_PROBE must be a number, not 'fast'"),
        (env_float, "nan", "CLEAVE_PROBE must be a finite number, not 'nan'"),
        (env_float, "inf", "CLEAVE_PROBE must be a finite number, not 'inf'"),
        (env_float, "-0.5", "CLEAVE_PROBE must be at least 0, not '-0.5'"),
    ],
)
def test_a_bad_number_names_the_variable_and_what_it_must_be(monkeypatch, reader, raw, message):
    monkeypatch.setenv("CLEAVE_PROBE", raw)
    with pytest.raises(ImproperlyConfigured) as caught:
        reader("CLEAVE_PROBE", default=1)
    assert str(caught.value) == message


def test_a_minimum_is_enforced(monkeypatch):
    monkeypatch.setenv("CLEAVE_PROBE", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("CLEAVE_PROBE", default=5, minimum=1)
    assert env_int("CLEAVE_PROBE", default=5, minimum=None) == 0


@pytest.mark.parametrize(
    ("raw", "rate"), [("100/minute", "100/minute"), (" 5 / s ", "5/s"), ("20/day", "20/day")]
)
def test_a_throttle_rate_is_read_as_drf_reads_it(monkeypatch, raw, rate):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setenv("CLEAVE_PROBE", raw)
    read = env_rate("CLEAVE_PROBE", default="600/minute")
    assert read == rate
    SimpleRateThrottle.parse_rate(SimpleRateThrottle, read)  # DRF accepts it


@pytest.mark.parametrize("raw", ["abc", "600", "0/minute", "10/fortnight", "-1/s", "ten/minute"])
def test_a_bad_throttle_rate_stops_the_process_instead_of_failing_every_request(monkeypatch, raw):
    monkeypatch.setenv("CLEAVE_PROBE", raw)
    with pytest.raises(ImproperlyConfigured, match="CLEAVE_PROBE must be a rate like 600/minute"):
        env_rate("CLEAVE_PROBE", default="600/minute")


def test_an_ambiguous_boolean_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("CLEAVE_PROBE", "maybe")
    with pytest.raises(ImproperlyConfigured, match="CLEAVE_PROBE must be one of"):
        env_bool("CLEAVE_PROBE", default=False)


def test_connections_are_kept_between_requests_for_a_minute_unless_told_otherwise(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("CLEAVE_DB_CONN_MAX_AGE", raising=False)
    monkeypatch.setenv("ORDERS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cleave_orders")
    # persistent connections, not a pool (on any server the pass puts `default` on)
    monkeypatch.setenv("ORDERS_DB_POOL_MAX", "0")
    monkeypatch.setenv("DB_POOL_MAX", "0")
    databases = database_settings(["orders"], data_dir=tmp_path)
    assert set(databases) == {"default", "orders"}
    for config in databases.values():
        assert config["CONN_MAX_AGE"] == 60
        # a kept connection the server dropped is replaced before it is used
        assert config["CONN_HEALTH_CHECKS"] is True

    monkeypatch.setenv("CLEAVE_DB_CONN_MAX_AGE", "0")
    for config in database_settings(["orders"], data_dir=tmp_path).values():
        assert config["CONN_MAX_AGE"] == 0  # closed at the end of every request
        assert config["CONN_HEALTH_CHECKS"] is False


def _python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _manage_py_check(tmp_path, **variables: str) -> subprocess.CompletedProcess:
    return _python(
        "manage.py", "check", env={**os.environ, **variables, "CLEAVE_DATA_DIR": str(tmp_path)}
    )


def test_a_bad_setting_stops_manage_py_with_a_message_and_no_traceback(tmp_path):
    result = _manage_py_check(tmp_path, CLEAVE_SAGA_LEASE_SECONDS="soon")

    assert result.returncode == 2
    assert result.stderr == (
        "Configuration error: CLEAVE_SAGA_LEASE_SECONDS must be a whole number, not 'soon'\n"
    )


def test_a_blank_boolean_takes_its_default(monkeypatch):
    monkeypatch.setenv("CLEAVE_PROBE", " ")
    assert env_bool("CLEAVE_PROBE", default=True) is True
    assert env_bool("CLEAVE_PROBE", default=False) is False
    monkeypatch.setenv("CLEAVE_PROBE", "Off")
    assert env_bool("CLEAVE_PROBE", default=True) is False


def test_a_choice_is_one_of_its_values_in_either_case(monkeypatch):
    monkeypatch.setenv("CLEAVE_PROBE", "Plain")
    assert env_choice("CLEAVE_PROBE", default="json", choices=("json", "plain")) == "plain"
    monkeypatch.setenv("CLEAVE_PROBE", "debug")
    assert env_choice("CLEAVE_PROBE", default="INFO", choices=("DEBUG", "INFO"), upper=True) == (
        "DEBUG"
    )
    monkeypatch.setenv("CLEAVE_PROBE", "xml")
    with pytest.raises(
        ImproperlyConfigured, match=r"CLEAVE_PROBE must be one of \['json', 'plain'\]"
    ):
        env_choice("CLEAVE_PROBE", default="json", choices=("json", "plain"))


@pytest.mark.parametrize(("raw", "code"), [("usd", "USD"), (" GBP ", "GBP")])
def test_a_currency_is_three_letters_in_upper_case(monkeypatch, raw, code):
    monkeypatch.setenv("CLEAVE_PROBE", raw)
    assert env_currency("CLEAVE_PROBE", default="EUR") == code


@pytest.mark.parametrize("raw", ["euro", "E1R", "EU"])
def test_a_bad_currency_is_a_configuration_error(monkeypatch, raw):
    monkeypatch.setenv("CLEAVE_PROBE", raw)
    with pytest.raises(ImproperlyConfigured, match="three-letter currency code"):
        env_currency("CLEAVE_PROBE", default="EUR")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CLEAVE_LOG_LEVEL", "LOUD", "CLEAVE_LOG_LEVEL must be one of"),
        ("CLEAVE_PAYMENT_PROVIDER", "nope.Provider", "is not a loadable PaymentProvider"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "OTEL_TRACES_EXPORTER must be one of"),
        ("CLEAVE_THROTTLE_USER", "lots", "CLEAVE_THROTTLE_USER must be a rate"),
    ],
)
def test_manage_py_names_each_bad_setting(tmp_path, variable, value, message):
    result = _manage_py_check(tmp_path, **{variable: value})

    assert result.returncode == 2
    assert result.stderr.startswith("Configuration error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.services
def test_the_redis_restore_lock_reaches_the_workers_channel():
    # kombu ignores a transport option it does not know: read it back from the
    # channel the Celery app opens, not from the settings
    require_server("Redis", "127.0.0.1", 6379)
    script = (
        "import django; django.setup()\n"
        "from config.celery import app\n"
        "with app.connection_for_read() as connection:\n"
        "    channel = connection.default_channel\n"
        "    print(channel.unacked_mutex_expire, channel.unacked_restore_interval)\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CLEAVE_", "CELERY_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CLEAVE_EVENT_TRANSPORT": "celery",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/7",
        "CLEAVE_EMBEDDED_SCHEDULER": "off",
    }
    defaults = _python("-c", script, env=env)
    chosen = _python("-c", script, env={**env, "CLEAVE_REDIS_RESTORE_LOCK": "7"})

    assert defaults.stdout.split() == ["30", "10"], defaults.stderr[-2000:]
    assert chosen.stdout.split() == ["7", "10"], chosen.stderr[-2000:]


def test_the_sqlite_files_are_private_to_their_owner(tmp_path, monkeypatch):
    import stat

    for name in ("DATABASE_URL", "USERS_DATABASE_URL", "ORDERS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)  # the server pass puts them on servers
    data = tmp_path / "data"
    loose = data / "orders.sqlite3"
    data.mkdir()
    loose.write_bytes(b"")
    loose.chmod(0o644)

    database_settings(["users", "orders"], data_dir=data)

    for name in ("default.sqlite3", "users.sqlite3", "orders.sqlite3"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
