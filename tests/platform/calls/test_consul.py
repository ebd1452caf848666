"""
Consul discovery and registration (cleave.calls.consul), against the
stand-in agent of tests/support/consul_standin.py: no Consul server runs on
the project's machines. The stand-in runs the registered HTTP checks itself,
every few hundredths of a second instead of every 10 s.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from cleave.calls import consul
from cleave.calls.consul import (
    ConsulSource,
    advertised_url,
    deregister,
    deregister_local,
    register,
    register_local,
)
from cleave.core.errors import NoHealthyInstances, ServiceUnavailable
from tests.support.consul_standin import ConsulStandIn
from tests.support.live import GUNICORN, PYTHON, ROOT, Process, free_port, wait_until

CHECK_EVERY = 0.05


class Instance:
    """A web process as its check sees it: `/health` answers `status` until stopped."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        instance = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(instance.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Stop answering: the port refuses connections from now on."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def no_thread_left_running():
    """Every test stops the threads it (or the stand-in) started."""
    before = set(threading.enumerate())
    yield
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


@pytest.fixture
def agent():
    with ConsulStandIn(check_interval=CHECK_EVERY) as standin:
        yield standin


@pytest.fixture
def instance():
    started: list[Instance] = []

    def start(status: int = 200) -> Instance:
        started.append(Instance(status))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def registered(agent: ConsulStandIn, label: str, instance: Instance, status="passing") -> str:
    """Register `instance` as `label`; return its id once its check reached `status`."""
    service_id = register(label, instance.url, addr=agent.addr)
    wait_until(
        lambda: agent.status(service_id) == status, timeout=5, every=0.01, what=f"{status} check"
    )
    return service_id


def health_requests(agent: ConsulStandIn, label: str = "catalog") -> int:
    return len(agent.received("GET", f"/v1/health/service/{label}"))


# --- registration -------------------------------------------------------------------


def test_registration_carries_an_http_check_on_health_every_10s_with_a_3s_timeout(agent, instance):
    web = instance()
    port = int(web.url.rsplit(":", 1)[1])

    service_id = register("catalog", web.url + "/", addr=agent.addr)

    assert service_id == f"catalog-127.0.0.1-{port}"
    assert agent.service(service_id) | {"CreateIndex": 0, "ModifyIndex": 0} == {
        "ID": service_id,
        "Service": "catalog",
        "Tags": [],
        "Address": "127.0.0.1",
        "Meta": {},
        "Port": port,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": False,
        "CreateIndex": 0,
        "ModifyIndex": 0,
    }
    (check,) = agent.checks(service_id)
    assert check["Definition"] == {
        "http": f"{web.url}/health",
        "interval": "10s",
        "timeout": "3s",
        "DeregisterCriticalServiceAfter": "1m",
    }
    assert (check["Type"], check["Interval"], check["Timeout"]) == ("http", "10s", "3s")
    (put,) = agent.received("PUT")
    assert put.path == "/v1/agent/service/register"


def test_an_explicit_id_is_used_and_registering_it_again_replaces_the_registration(agent, instance):
    first, second = instance(), instance()

    assert register("catalog", first.url, service_id="catalog-a", addr=agent.addr) == "catalog-a"
    register("catalog", second.url, service_id="catalog-a", addr=agent.addr)

    assert agent.service("catalog-a")["Port"] == int(second.url.rsplit(":", 1)[1])
    source = ConsulSource(agent.addr, cache_seconds=0)
    wait_until(lambda: agent.status("catalog-a") == "passing", timeout=5, every=0.01)
    assert source.instances("catalog") == [second.url]


def test_deregistering_removes_the_instance(agent, instance):
    service_id = registered(agent, "catalog", instance())
    source = ConsulSource(agent.addr, cache_seconds=0)
    assert len(source.instances("catalog")) == 1

    deregister(service_id, addr=agent.addr)

    assert agent.service(service_id) is None
    with pytest.raises(NoHealthyInstances):
        source.instances("catalog")
    # an id Consul does not know (already gone) is not an error
    deregister(service_id, addr=agent.addr)


# --- discovery ----------------------------------------------------------------------


def test_only_instances_whose_checks_all_pass_are_returned_sorted(agent, instance):
    healthy = [instance(), instance()]
    for web in healthy:
        registered(agent, "catalog", web)
    registered(agent, "catalog", instance(status=500), status="critical")
    registered(agent, "catalog", instance(status=429), status="warning")
    registered(agent, "orders", instance())

    source = ConsulSource(agent.addr, cache_seconds=0)

    assert source.instances("catalog") == sorted(web.url for web in healthy)
    (asked,) = agent.received("GET", "/v1/health/service/catalog")
    assert asked.query == {"passing": ["1"]}


def test_an_instance_whose_health_stops_answering_drops_out_once_its_check_is_critical(
    agent, instance
):
    staying, leaving = instance(), instance()
    registered(agent, "catalog", staying)
    leaving_id = registered(agent, "catalog", leaving)
    source = ConsulSource(agent.addr, cache_seconds=0)
    assert source.instances("catalog") == sorted([staying.url, leaving.url])

    leaving.stop()

    wait_until(lambda: source.instances("catalog") == [staying.url], timeout=5, every=0.01)
    assert agent.status(leaving_id) == "critical"


def test_an_instance_registered_without_an_address_is_reached_at_its_nodes_address(agent):
    # py-consul leaves Address out, so Consul answers "" and the node's address counts
    consul.client(agent.addr).agent.service.register(
        "catalog",
        service_id="bare",
        port=8123,
        check={"http": agent.addr + "/v1/health/service/catalog", "interval": "10s"},
    )
    wait_until(lambda: agent.status("bare") == "passing", timeout=5, every=0.01)

    assert ConsulSource(agent.addr, cache_seconds=0).instances("catalog") == [
        "http://127.0.0.1:8123"
    ]


@pytest.mark.parametrize(
    ("query", "entries"), [("", 2), ("?passing", 1), ("?passing=1", 1), ("?passing=true", 1)]
)
def test_the_stand_in_filters_on_passing_as_consul_does(agent, instance, query, entries):
    registered(agent, "catalog", instance())
    registered(agent, "catalog", instance(status=500), status="critical")

    answer = requests.get(f"{agent.addr}/v1/health/service/catalog{query}", timeout=5)

    assert answer.status_code == 200
    assert int(answer.headers["X-Consul-Index"]) > 0
    assert len(answer.json()) == entries
    assert {tuple(answer.json()[0])} == {("Node", "Service", "Checks")}


def test_no_passing_instance_raises_no_healthy_instances(agent, instance):
    source = ConsulSource(agent.addr, cache_seconds=0)
    with pytest.raises(NoHealthyInstances, match="no healthy instances of catalog"):
        source.instances("catalog")

    registered(agent, "catalog", instance(status=503), status="critical")

    with pytest.raises(NoHealthyInstances, match="no healthy instances of catalog"):
        source.instances("catalog")


def test_the_answer_is_kept_cache_seconds_and_asked_for_again_after(agent, instance):
    first = instance()
    registered(agent, "catalog", first)
    clock = FakeClock()
    source = ConsulSource(agent.addr, cache_seconds=5, clock=clock)

    assert source.instances("catalog") == [first.url]
    second = instance()
    registered(agent, "catalog", second)
    clock.advance(4.9)

    assert source.instances("catalog") == [first.url]
    assert health_requests(agent) == 1

    clock.advance(0.1)

    assert source.instances("catalog") == sorted([first.url, second.url])
    assert health_requests(agent) == 2
    assert source.instances("catalog") == sorted([first.url, second.url])
    assert health_requests(agent) == 2


def test_the_cache_is_kept_per_label(agent, instance):
    catalog, orders = instance(), instance()
    registered(agent, "catalog", catalog)
    registered(agent, "orders", orders)
    source = ConsulSource(agent.addr, cache_seconds=5, clock=FakeClock())

    assert source.instances("catalog") == [catalog.url]
    assert source.instances("orders") == [orders.url]
    assert source.instances("catalog") == [catalog.url]

    assert health_requests(agent, "catalog") == 1
    assert health_requests(agent, "orders") == 1


def test_threads_asking_at_once_share_one_request_to_consul(agent, instance):
    web = instance()
    registered(agent, "catalog", web)
    source = ConsulSource(agent.addr, cache_seconds=5, clock=FakeClock())
    start = threading.Barrier(8)
    answers: list[list[str]] = []

    def ask() -> None:
        start.wait()
        answers.append(source.instances("catalog"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [[web.url]] * 8
    assert health_requests(agent) == 1


def test_while_consul_is_unreachable_the_last_known_instances_are_used(instance, caplog):
    web = instance()
    clock = FakeClock()
    with ConsulStandIn(check_interval=CHECK_EVERY) as agent:
        registered(agent, "catalog", web)
        source = ConsulSource(agent.addr, cache_seconds=5, clock=clock)
        assert source.instances("catalog") == [web.url]
    clock.advance(5)  # the agent is gone: its port refuses connections

    with caplog.at_level(logging.WARNING, logger="cleave.calls.consul"):
        assert source.instances("catalog") == [web.url]

    assert "consul unreachable" in caplog.text
    assert web.url in caplog.text


def test_consul_unreachable_with_no_known_list_raises_service_unavailable():
    source = ConsulSource(f"127.0.0.1:{free_port()}", cache_seconds=5)

    with pytest.raises(ServiceUnavailable, match="consul unreachable") as raised:
        source.instances("catalog")

    assert not isinstance(raised.value, NoHealthyInstances)
    assert raised.value.service == "catalog"


@pytest.mark.parametrize("form", ["{host}:{port}", "http://{host}:{port}", "http://{host}:{port}/"])
def test_consul_http_addr_is_host_and_port_or_a_url(agent, instance, settings, form):
    web = instance()
    registered(agent, "catalog", web)
    settings.CONSUL_HTTP_ADDR = form.format(host="127.0.0.1", port=agent.port)

    assert ConsulSource(cache_seconds=0).instances("catalog") == [web.url]


@pytest.mark.parametrize("addr", ["ftp://127.0.0.1:8500", "127.0.0.1:port", "http://"])
def test_a_malformed_consul_http_addr_is_refused_when_the_source_is_made(addr):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="CONSUL_HTTP_ADDR"):
        ConsulSource(addr)


# --- this process's registrations -----------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("10.1.2.3:9000", "http://10.1.2.3:9000"),
        ("0.0.0.0:8000", "http://web-7.internal:8000"),
        ("[::]:8000", "http://web-7.internal:8000"),
        ("[::1]:8001", "http://[::1]:8001"),
        ("localhost", "http://localhost:8000"),  # gunicorn's default port
    ],
)
def test_the_advertised_url_comes_from_the_bind(settings, monkeypatch, bind, expected):
    settings.CLEAVE_ADVERTISE_URL = ""
    monkeypatch.setattr(consul.socket, "gethostname", lambda: "web-7.internal")

    assert advertised_url(bind) == expected


def test_cleave_advertise_url_wins_over_the_bind(settings):
    settings.CLEAVE_ADVERTISE_URL = "http://catalog-1.shop.internal:8000/"

    assert advertised_url("0.0.0.0:8000") == "http://catalog-1.shop.internal:8000"


def test_a_unix_socket_bind_cannot_be_advertised(settings):
    settings.CLEAVE_ADVERTISE_URL = ""

    with pytest.raises(ValueError, match="CLEAVE_ADVERTISE_URL"):
        advertised_url("unix:/run/cleave.sock")


def test_register_local_registers_every_local_context_when_discovery_is_consul(
    agent, instance, settings, caplog
):
    web = instance()
    settings.CLEAVE_DISCOVERY = "consul"
    settings.CONSUL_HTTP_ADDR = agent.addr
    settings.CLEAVE_ADVERTISE_URL = ""
    settings.CLEAVE_CONTEXTS = ["catalog", "orders"]
    bind = web.url.removeprefix("http://")

    with caplog.at_level(logging.INFO, logger="cleave.calls.consul"):
        ids = register_local(bind)

    assert [r.levelname for r in caplog.records] == ["INFO", "INFO"]
    assert sorted(agent.service(i)["Service"] for i in ids) == ["catalog", "orders"]
    source = ConsulSource(cache_seconds=0)
    wait_until(lambda: all(agent.status(i) == "passing" for i in ids), timeout=5, every=0.01)
    assert source.instances("catalog") == source.instances("orders") == [web.url]

    deregister_local(ids)

    assert [agent.service(i) for i in ids] == [None, None]


def test_an_advertised_host_django_would_refuse_is_reported_at_registration(
    agent, settings, monkeypatch, caplog
):
    # Consul's check, like every caller, sends the advertised host in `Host`
    settings.CLEAVE_DISCOVERY = "consul"
    settings.CONSUL_HTTP_ADDR = agent.addr
    settings.CLEAVE_ADVERTISE_URL = ""
    settings.CLEAVE_CONTEXTS = ["catalog"]
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    monkeypatch.setattr(consul.socket, "gethostname", lambda: "web-7.internal")

    with caplog.at_level(logging.ERROR, logger="cleave.calls.consul"):
        ids = register_local("0.0.0.0:8000")

    assert ids == ["catalog-web-7.internal-8000"]
    (record,) = caplog.records
    assert "web-7.internal is not in DJANGO_ALLOWED_HOSTS" in record.getMessage()


def test_register_local_does_nothing_unless_discovery_is_consul(agent, settings):
    settings.CLEAVE_DISCOVERY = "env"
    settings.CONSUL_HTTP_ADDR = agent.addr

    assert register_local("127.0.0.1:8000") == []
    deregister_local(["catalog-127.0.0.1-8000"])

    assert agent.received() == []


def test_a_failed_registration_is_logged_and_the_process_keeps_serving(settings, caplog):
    settings.CLEAVE_DISCOVERY = "consul"
    settings.CONSUL_HTTP_ADDR = f"127.0.0.1:{free_port()}"
    settings.CLEAVE_ADVERTISE_URL = ""
    settings.CLEAVE_CONTEXTS = ["catalog"]

    with caplog.at_level(logging.ERROR, logger="cleave.calls.consul"):
        assert register_local("127.0.0.1:8000") == []

    (record,) = caplog.records
    assert "could not register catalog at http://127.0.0.1:8000" in record.getMessage()


def test_a_master_replaced_by_usr2_leaves_the_registrations_to_its_successor(
    agent, settings, monkeypatch
):
    from types import SimpleNamespace

    from config import gunicorn as hooks

    monkeypatch.setattr("django.setup", lambda: None)  # done already; would reset logging
    # the master reads the environment: it sets Django up only to register
    monkeypatch.setenv("CLEAVE_DISCOVERY", "consul")
    settings.CLEAVE_DISCOVERY = "consul"
    settings.CONSUL_HTTP_ADDR = agent.addr
    settings.CLEAVE_ADVERTISE_URL = ""
    settings.CLEAVE_CONTEXTS = ["catalog"]
    server = SimpleNamespace(cfg=SimpleNamespace(bind=["127.0.0.1:8000"]), reexec_pid=4321)
    hooks.when_ready(server)

    hooks.on_exit(server)

    assert agent.service("catalog-127.0.0.1-8000") is not None
    server.reexec_pid = 0  # the successor is gone: this master is the one serving
    hooks.on_exit(server)
    assert agent.service("catalog-127.0.0.1-8000") is None


# --- a real web server ------------------------------------------------------------------


def test_gunicorn_registers_its_contexts_when_ready_and_deregisters_them_on_sigterm(
    agent, tmp_path
):
    env = {
        key: value
        for key, value in os.environ.items()
        # SQLite files in the data directory; no setting of the test process leaks in
        if not key.endswith("DATABASE_URL")
        and not key.startswith(("PYTEST", "CLEAVE_", "CONSUL_", "DJANGO_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "CLEAVE_DATA_DIR": str(tmp_path / "data"),
            "CLEAVE_CONTEXTS": "catalog",
            "CLEAVE_DISCOVERY": "consul",
            "CONSUL_HTTP_ADDR": agent.addr,
            "CLEAVE_EMBEDDED_SCHEDULER": "off",
            "CLEAVE_TRACING": "off",
            "CLEAVE_LOG_FORMAT": "plain",
            "PYTHONUNBUFFERED": "1",
        }
    )
    subprocess.run(
        [PYTHON, "manage.py", "migrate_all", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [GUNICORN, "-c", "python:config.gunicorn", "config.wsgi"]
    args += ["--bind", f"127.0.0.1:{port}", "--workers", "1"]
    web = Process("web", args, env, tmp_path / "web.log")
    try:
        source = ConsulSource(agent.addr, cache_seconds=0)

        def discovered() -> list[str]:
            if not web.alive():
                raise AssertionError(f"gunicorn exited:\n{web.output()[-4000:]}")
            try:
                return source.instances("catalog")
            except NoHealthyInstances:
                return []

        assert wait_until(discovered, timeout=60, every=0.05, what="catalog passing in consul") == [
            url
        ]
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        service_id = f"catalog-127.0.0.1-{port}"
        assert agent.checks(service_id)[0]["Definition"]["http"] == f"{url}/health"

        os.kill(web.pid, signal.SIGTERM)  # the master: it stops its worker, then exits
        assert web.popen.wait(timeout=30) == 0
    finally:
        web.kill()  # SIGKILL to its process group if still running; reaped either way

    assert agent.received("PUT", f"/v1/agent/service/deregister/{service_id}")
    assert agent.service(service_id) is None
    with pytest.raises(NoHealthyInstances):
        source.instances("catalog")
    assert "consul: deregistered" in web.output()
