"""
The client's address comes from the connection and the declared trusted
proxies only (cleave.core.proxies): the outside probe escaped the anonymous
throttle by rotating a made-up first X-Forwarded-For entry, directly and
through the gateway, and opened /metrics by naming a private address.
"""

from __future__ import annotations

import ipaddress
import logging

import pytest
from django.core.cache import cache
from django.test import RequestFactory

from cleave.core.proxies import client_address
from cleave.testing import unit


def address(remote: str, forwarded: str | None = None) -> str:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


def networks(*cidrs: str) -> tuple:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says(settings):
    settings.CLEAVE_TRUSTED_PROXIES = 0

    assert address("203.0.113.9", "10.0.0.1") == "203.0.113.9"
    assert address("203.0.113.9", "10.0.0.1, 127.0.0.1") == "203.0.113.9"
    assert address("203.0.113.9") == "203.0.113.9"


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (1, "198.51.100.7", "198.51.100.7"),  # what the gateway appended
        (1, "10.0.0.1, 198.51.100.7", "198.51.100.7"),  # a made-up first entry
        (1, "10.0.0.1 ,198.51.100.7", "198.51.100.7"),
        (1, None, "127.0.0.1"),  # another context calling directly
        (1, "", "127.0.0.1"),
        (1, "not-an-address", "127.0.0.1"),  # never garbage as an address
        (1, "2001:db8::1", "2001:db8::1"),
        (2, "10.0.0.1, 198.51.100.7, 192.0.2.10", "198.51.100.7"),  # a balancer, then nginx
        (2, "198.51.100.7", "127.0.0.1"),  # fewer entries than proxies: the peer
    ],
)
def test_a_number_of_hops_believes_only_the_entries_those_proxies_appended(
    settings, hops, forwarded, expected
):
    settings.CLEAVE_TRUSTED_PROXIES = hops

    assert address("127.0.0.1", forwarded) == expected


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("127.0.0.1", "10.0.0.1, 198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "198.51.100.7, 10.1.2.3", "198.51.100.7"),  # two proxies of ours
        ("203.0.113.9", "10.0.0.1", "203.0.113.9"),  # a client connecting directly
        ("127.0.0.1", "10.0.0.2, 10.1.2.3", "10.0.0.2"),  # every hop inside: the first
        ("127.0.0.1", "garbage, 10.1.2.3", "10.1.2.3"),  # the proxy that passed garbage
    ],
)
def test_trusted_networks_are_walked_from_the_peer_to_the_first_outside_address(
    settings, remote, forwarded, expected
):
    settings.CLEAVE_TRUSTED_PROXIES = networks("127.0.0.1/32", "10.0.0.0/8")

    assert address(remote, forwarded) == expected


def test_the_setting_reads_a_count_or_networks_and_refuses_anything_else(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from cleave.core.conf import BY_NAME

    setting = BY_NAME["CLEAVE_TRUSTED_PROXIES"]
    monkeypatch.delenv("CLEAVE_TRUSTED_PROXIES", raising=False)
    assert setting.read() == 0
    monkeypatch.setenv("CLEAVE_TRUSTED_PROXIES", "2")
    assert setting.read() == 2
    monkeypatch.setenv("CLEAVE_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
    assert setting.read() == networks("10.0.0.0/8", "::1/128")
    monkeypatch.setenv("CLEAVE_TRUSTED_PROXIES", "the gateway")
    with pytest.raises(ImproperlyConfigured, match="CLEAVE_TRUSTED_PROXIES must be"):
        setting.read()


# --- the probe's reproduction ------------------------------------------------------------


@pytest.fixture
def anon_rate(settings):
    """CLEAVE_THROTTLE_ANON=5/minute, as the probe ran it."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "5/minute", "user": "1000/minute"},
    }
    cache.clear()  # the throttles count in the cache
    yield
    cache.clear()


@unit
@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded"),
    [
        (0, "203.0.113.9", "198.18.7.{n}"),  # gunicorn reached directly
        (1, "127.0.0.1", "198.18.7.{n}, 203.0.113.9"),  # through the gateway, which appends
    ],
    ids=["direct", "behind-the-gateway"],
)
def test_a_made_up_forwarded_for_entry_does_not_escape_the_anonymous_throttle(
    api, settings, anon_rate, proxies, remote, forwarded
):
    settings.CLEAVE_TRUSTED_PROXIES = proxies

    codes = [
        api.get(
            "/api/catalog/categories",
            REMOTE_ADDR=remote,
            HTTP_X_FORWARDED_FOR=forwarded.format(n=n),
        ).status_code
        for n in range(1, 10)
    ]

    assert codes == [200] * 5 + [429] * 4


@unit
def test_naming_a_private_address_opens_neither_metrics_nor_readiness_details(api, settings):
    settings.CLEAVE_TRUSTED_PROXIES = 0

    metrics = api.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.0.0.1")
    ready = api.get("/ready", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.0.0.1")

    assert metrics.status_code == 404
    assert "checks" not in ready.json()


@unit
def test_the_access_log_names_the_client_as_decided(api, settings, caplog):
    settings.CLEAVE_TRUSTED_PROXIES = 1
    caplog.set_level(logging.INFO, logger="cleave.access")

    api.get(
        "/api/catalog/categories",
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="10.0.0.1, 198.51.100.7",
    )

    [line] = [record for record in caplog.records if record.name == "cleave.access"]
    assert line.client_address == "198.51.100.7"


@unit
def test_the_decided_address_is_left_in_the_environ_for_gunicorns_access_line(api, settings):
    settings.CLEAVE_TRUSTED_PROXIES = 1
    seen = {
        path: api.get(
            path, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.0.0.1, 198.51.100.7"
        ).wsgi_request.META["cleave.client_address"]
        for path in ("/api/catalog/categories", "/health")
    }

    assert seen == {"/api/catalog/categories": "198.51.100.7", "/health": "198.51.100.7"}
