"""
Every environment variable is declared once: the platform's in cleave.core.conf,
a context's in its own `conf.py`. Declarations are read into settings of the
same name by `install()`, or where they are used by `value()`. (That the code
reads no undeclared variable and the documentation says what the declarations
say: tests/tools/checks/test_configuration.py.)
"""

from __future__ import annotations

import sys
import types

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cleave.core import conf
from cleave.core.conf import BY_NAME, SETTINGS, Setting


def every_declaration() -> list[Setting]:
    found = conf.declarations(
        package=settings.CLEAVE_CONTEXT_PACKAGE, labels=settings.CLEAVE_ALL_CONTEXTS
    )
    return [setting for declared in found.values() for setting in declared]


def test_every_declaration_says_what_it_means():
    assert [setting.name for setting in every_declaration() if not setting.doc] == []


def test_every_declaration_is_of_a_known_kind_and_the_platforms_in_a_known_section():
    assert [s.name for s in every_declaration() if s.kind not in conf.KINDS] == []
    assert [s.name for s in SETTINGS if s.section not in conf.SECTIONS] == []


def test_the_platform_declares_none_of_the_shops_settings_and_the_contexts_do():
    shop = {
        "CLEAVE_CURRENCY": "catalog",
        "CLEAVE_RESERVATION_TTL": "inventory",
        "CLEAVE_CHECKOUT_DEADLINE": "orders",
        "CLEAVE_EMAIL_VERIFY_MAX_AGE": "users",
        "CLEAVE_PAYMENT_PROVIDER": "payments",
        "CLEAVE_SIGNIN_FAILURES": "users",
        "CLEAVE_THROTTLE_VERIFY_RESEND": "users",
    }
    package = settings.CLEAVE_CONTEXT_PACKAGE
    assert sorted(set(shop) & {setting.name for setting in SETTINGS}) == []
    for name, label in shop.items():
        assert name in {s.name for s in conf.context_settings(package, label)}, name


def test_every_installed_declaration_is_a_setting_of_its_name():
    for setting in every_declaration():
        if setting.installed and not setting.is_pattern:
            assert hasattr(settings, setting.name), setting.name


def test_install_reads_the_environment_into_the_namespace(monkeypatch):
    monkeypatch.setenv("CLEAVE_RETRY_BASE", "0.25")
    monkeypatch.setenv("CLEAVE_CURRENCY", "usd")
    namespace: dict = {}

    conf.install(namespace, package=settings.CLEAVE_CONTEXT_PACKAGE, labels=["catalog"])

    assert namespace["CLEAVE_RETRY_BASE"] == 0.25
    assert namespace["CLEAVE_CURRENCY"] == "USD"  # the catalog's, read the same way
    assert "CLEAVE_RESERVATION_TTL" not in namespace  # inventory was not named
    # read where they are used, never installed: derived, or renamed, or patterns
    for name in ("CLEAVE_CONTEXTS", "DJANGO_DEBUG", "CLEAVE_THROTTLE_ANON", "<LABEL>_DATABASE_URL"):
        assert name not in namespace


def test_a_setting_declared_twice_is_refused(monkeypatch):
    package = types.ModuleType("twice")
    package.__path__ = []
    declares = types.ModuleType("twice.shop.conf")
    declares.SETTINGS = (Setting("CLEAVE_RETRY_BASE", "float", default=1, doc="again"),)
    monkeypatch.setitem(sys.modules, "twice", package)
    monkeypatch.setitem(sys.modules, "twice.shop", types.ModuleType("twice.shop"))
    monkeypatch.setitem(sys.modules, "twice.shop.conf", declares)

    with pytest.raises(ImproperlyConfigured, match="CLEAVE_RETRY_BASE is declared twice"):
        conf.install({}, package="twice", labels=["shop"])


def test_a_setting_above_the_one_it_may_not_exceed_stops_the_process(monkeypatch):
    monkeypatch.setenv("CLEAVE_SERVICE_TOKEN_TTL", "7200")
    monkeypatch.setenv("CLEAVE_SERVICE_TOKEN_MAX_TTL", "3600")

    with pytest.raises(ImproperlyConfigured, match=r"CLEAVE_SERVICE_TOKEN_TTL \(7200\) must be at"):
        conf.install({}, package=settings.CLEAVE_CONTEXT_PACKAGE, labels=[])


def test_a_pattern_is_read_for_the_label_it_stands_for(monkeypatch):
    monkeypatch.setenv("ORDERS_DB_POOL_MAX", "7")
    monkeypatch.delenv("USERS_DB_POOL_MAX", raising=False)

    assert conf.value("<LABEL>_DB_POOL_MAX", label="orders") == 7
    # unset: the default of the vendor the alias is on (cleave.core.databases)
    assert conf.value("<LABEL>_DB_POOL_MAX", label="users") is None
    with pytest.raises(TypeError, match="is a pattern"):
        conf.value("<LABEL>_DB_POOL_MAX")


def test_a_secret_unset_is_generated_once_into_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("CLEAVE_JWT_SECRET", raising=False)

    first = conf.value("CLEAVE_JWT_SECRET", data_dir=tmp_path)

    assert (tmp_path / "jwt_secret").read_text() == first
    assert conf.value("CLEAVE_JWT_SECRET", data_dir=tmp_path) == first
    monkeypatch.setenv("CLEAVE_JWT_SECRET", "from-the-environment")
    assert conf.value("CLEAVE_JWT_SECRET", data_dir=tmp_path) == "from-the-environment"


def test_a_choice_that_needs_an_absent_extra_names_the_extra(monkeypatch):
    monkeypatch.setenv("CLEAVE_DISCOVERY", "consul")
    monkeypatch.setattr(conf, "find_spec", lambda module: None)

    with pytest.raises(ImproperlyConfigured) as caught:
        conf.value("CLEAVE_DISCOVERY")

    assert "CLEAVE_DISCOVERY=consul needs the optional extra `consul`" in str(caught.value)
    assert "pip install -e '.[consul]'" in str(caught.value)
    monkeypatch.setenv("CLEAVE_DISCOVERY", "env")
    assert conf.value("CLEAVE_DISCOVERY") == "env"  # nothing extra needed


def test_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("CLEAVE_BREAKER_MIN_CALLS", "0")
    with pytest.raises(ImproperlyConfigured, match="CLEAVE_BREAKER_MIN_CALLS must be at least 1"):
        BY_NAME["CLEAVE_BREAKER_MIN_CALLS"].read()


@pytest.mark.parametrize(
    ("name", "given", "read"),
    [
        ("CLEAVE_LOG_LEVEL", "warning", "WARNING"),
        ("CLEAVE_LOG_FORMAT", "PLAIN", "plain"),
        ("CLEAVE_EVENT_RELAY_IN_WORKER", "", False),
        ("CLEAVE_TRACING", "off", False),
        ("CLEAVE_RETRY_BASE", "0.25", 0.25),
        (
            "DJANGO_ALLOWED_HOSTS",
            "shop.example.com, api.example.com",
            ["shop.example.com", "api.example.com"],
        ),
        (
            "DJANGO_SECURE_PROXY_SSL_HEADER",
            "X-Forwarded-Proto",
            ("HTTP_X_FORWARDED_PROTO", "https"),
        ),
    ],
)
def test_each_kind_reads_what_an_operator_writes(monkeypatch, name, given, read):
    monkeypatch.setenv(name, given)
    assert BY_NAME[name].read() == read
