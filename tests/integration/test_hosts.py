"""The hosts harness itself (tests.support.hosts): cuts that cut, heals that heal, nothing left."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cleave.testing import services_required
from tests.support import hosts as network
from tests.support.live import wait_until

pytestmark = pytest.mark.services


@pytest.fixture
def hosts():
    why = network.available()
    if why is not None:
        if services_required():
            pytest.fail(f"CLEAVE_REQUIRE_SERVICES=1 but {why}")
        pytest.skip(why)
    with network.Hosts.create(["a", "b"]) as made:
        yield made


def _status(hosts: network.Hosts, url: str, on: str | None) -> str:
    argv = ["curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", url]
    done = subprocess.run(
        hosts.wrap(on, argv) if on else argv, capture_output=True, text=True, timeout=10
    )
    return done.stdout


def _server_reachable(hosts: network.Hosts, port: int) -> bool:
    argv = ["bash", "-c", f"exec 3<>/dev/tcp/{hosts.gateway}/{port}"]
    done = subprocess.run(hosts.wrap("a", ["timeout", "2", *argv]), capture_output=True, timeout=10)
    return done.returncode == 0


def test_cuts_between_hosts_and_to_a_server_and_their_heal(hosts):
    port = 18765
    server = subprocess.Popen(
        hosts.wrap(
            "b", [sys.executable, "-m", "http.server", str(port), "--bind", hosts.address("b")]
        ),
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://{hosts.address('b')}:{port}/"
        wait_until(lambda: _status(hosts, url, "a") == "200", timeout=30, what="b's server")
        assert _server_reachable(hosts, 5672)  # RabbitMQ, on the gateway's loopback

        hosts.cut("a", "b")
        assert _status(hosts, url, "a") == "000"
        assert _status(hosts, url, None) == "200"  # only a and b are cut apart
        hosts.heal()
        assert _status(hosts, url, "a") == "200"

        hosts.cut("a", "b", answers_only=True, port=port)
        assert _status(hosts, url, "a") == "000"  # the request arrives, the answer never
        hosts.heal()
        assert _status(hosts, url, "a") == "200"

        hosts.cut_server("a", 5672)
        assert not _server_reachable(hosts, 5672)
        hosts.heal()
        assert _server_reachable(hosts, 5672)
    finally:
        server.kill()
        server.wait(timeout=10)


def test_closing_removes_every_namespace_link_and_rule_by_name():
    if network.available() is not None:
        pytest.skip(network.available())
    made = network.Hosts.create(["a"])
    names = (made.hosts["a"].namespace, made.bridge, made.hosts["a"].outer, made.table)
    made.close()

    assert (
        names[0]
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert names[1] not in links and names[2] not in links
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert names[3] not in tables
