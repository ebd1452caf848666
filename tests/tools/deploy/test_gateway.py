"""
The gateway rendered from the route table, checked by nginx itself and run in
front of loopback backends that say who answered; and the plan of a local
split (`manage.py run_split`).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command

from cleave_tools.deploy import split
from cleave_tools.deploy.gateway import GATEWAY_ERRORS, Limits, Route, render_nginx, route_table
from tests.support.live import free_port

CONTEXTS = ["users", "catalog", "inventory", "orders", "payments", "notifications", "analytics"]


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        if os.environ.get("CLEAVE_REQUIRE_SERVICES") == "1":
            pytest.fail("nginx is not installed (apt-get install nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


class Backend:
    """A loopback server answering every request with who it is, the path and the request id."""

    def __init__(self, name: str) -> None:
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = json.dumps(
                    {
                        "backend": backend.name,
                        "path": self.path,
                        "request_id": self.headers.get("X-Request-ID"),
                        "host": self.headers.get("Host"),
                        "forwarded_for": self.headers.get("X-Forwarded-For"),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.name = name
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_route_table_follows_service_urls_and_defaults_to_kubernetes_dns(monkeypatch):
    for label in CONTEXTS:
        monkeypatch.delenv(f"{label.upper()}_SERVICE_URL", raising=False)
    monkeypatch.setenv("INVENTORY_SERVICE_URL", "http://10.0.0.5:8001, http://10.0.0.6:8001/")

    routes = {route.context: route for route in route_table()}

    assert list(routes) == CONTEXTS
    assert routes["users"] == Route("users", "/api/users/", ("users:80",))
    assert routes["inventory"].servers == ("10.0.0.5:8001", "10.0.0.6:8001")


def test_the_rendered_gateway_passes_nginx_t(tmp_path):
    nginx = nginx_binary()
    routes = [
        Route(label, f"/api/{label}/", (f"127.0.0.1:{9000 + n}",))
        for n, label in enumerate(CONTEXTS)
    ]
    admin = Route("admin", "/admin/", ("127.0.0.1:9100",))
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        render_nginx(routes, listen="127.0.0.1:18080", standalone=str(tmp_path), admin=admin)
    )

    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_the_gateway_command_refuses_bad_options():
    with pytest.raises(CommandError, match="--listen"):
        call_command("gateway", "nginx", "--listen", "everywhere")
    with pytest.raises(CommandError, match="--body-size"):
        call_command("gateway", "nginx", "--body-size", "lots")


class Silent:
    """A loopback port that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """
    nginx in front of one backend per context (users is the operations
    upstream) and one for the admin console, and two routes of its own:
    /api/gone/ to a port nothing listens on, /api/silent/ to one that never
    answers.
    """
    tmp_path = tmp_path_factory.mktemp("gateway")
    nginx = nginx_binary()
    backends = {label: Backend(label) for label in [*CONTEXTS, "admin"]}
    silent = Silent()
    routes = [
        Route(label, f"/api/{label}/", (backends[label].url.removeprefix("http://"),))
        for label in CONTEXTS
    ]
    routes += [
        Route("gone", "/api/gone/", (f"127.0.0.1:{free_port()}",)),
        Route("silent", "/api/silent/", (silent.address,)),
    ]
    port = free_port()
    conf = tmp_path / "nginx.conf"
    limits = Limits(read_timeout="2s")
    admin = Route("admin", "/admin/", (backends["admin"].url.removeprefix("http://"),))
    conf.write_text(
        render_nginx(
            routes,
            listen=f"127.0.0.1:{port}",
            standalone=str(tmp_path),
            limits=limits,
            admin=admin,
        )
    )
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-e", "stderr", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{base}/health", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((tmp_path / "error.log").read_text()) from None
                time.sleep(0.1)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        for backend in backends.values():
            backend.close()
        silent.close()


@pytest.mark.parametrize(
    ("path", "backend"),
    [
        ("/api/users/me", "users"),
        ("/api/orders/cart/items", "orders"),
        ("/api/inventory/stock/TEE-1", "inventory"),
        # the whole admin goes to the admin console, every context's pages included
        ("/admin/orders/order/", "admin"),
        ("/admin/analytics/", "admin"),
        ("/admin/cleave/outboxevent/?context=payments", "admin"),
        ("/admin/cleave/sagainstance/1/change/", "admin"),
        ("/admin/", "admin"),
        ("/admin/login/", "admin"),
        ("/api/schema/", "users"),
        ("/api/docs/", "users"),
        ("/static/admin/css/base.css", "users"),
        ("/ready", "users"),
    ],
)
def test_the_gateway_routes_every_path_to_its_owner_unchanged(gateway, path, backend):
    answer = requests.get(gateway + path, timeout=5).json()

    assert answer["backend"] == backend
    assert answer["path"] == path  # no rewrite: each context serves /api/<prefix>/ itself
    assert answer["host"] == gateway.removeprefix("http://")  # links keep the port


def test_the_gateway_passes_a_request_id_on_and_makes_one_when_absent(gateway):
    given = requests.get(f"{gateway}/api/users/me", headers={"X-Request-ID": "abc-123"}, timeout=5)
    made = requests.get(f"{gateway}/api/users/me", timeout=5)

    assert given.json()["request_id"] == "abc-123"
    assert len(made.json()["request_id"]) == 32


def test_behind_the_gateway_one_trusted_hop_is_the_address_that_connected(gateway, settings):
    from django.test import RequestFactory

    from cleave.core.proxies import client_address

    answer = requests.get(
        f"{gateway}/api/catalog/categories", headers={"X-Forwarded-For": "10.0.0.1"}, timeout=5
    ).json()
    settings.CLEAVE_TRUSTED_PROXIES = 1  # what run_split, compose and Kubernetes set
    seen = RequestFactory().get(
        "/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=answer["forwarded_for"]
    )

    # nginx appends the address that connected to what the client wrote
    assert answer["forwarded_for"] == "10.0.0.1, 127.0.0.1"
    assert client_address(seen) == "127.0.0.1"


def test_the_gateway_answers_health_itself_and_never_serves_metrics(gateway):
    health = requests.get(f"{gateway}/health", timeout=5)
    metrics = requests.get(f"{gateway}/metrics", timeout=5)

    assert health.json() == {"status": "ok"}
    assert metrics.status_code == 404
    assert metrics.headers["Content-Type"] == "application/problem+json"


def raw(gateway: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as it is to the gateway; the status, headers and body of the answer."""
    host, port = gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT A REQUEST LINE\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /api/users/me HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"TRACE /api/users/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        (
            b"POST /api/users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2000000\r\nConnection: close\r\n\r\n{}",
            413,
        ),
        (b"GET /api/gone/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 502),
        (b"GET /api/silent/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 504),
        (b"GET /_cleave/errors/400 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    ],
    ids=[
        "unparsable",
        "uri-too-long",
        "header-too-large",
        "trace",
        "body-too-large",
        "down",
        "hung",
        "an-error-page-asked-for",
    ],
)
def test_the_gateways_own_errors_are_problem_details_naming_no_version(
    gateway, request_bytes, status
):
    answered, headers, body = raw(gateway, request_bytes)

    assert answered == status, body[:300]
    assert headers["content-type"] == "application/problem+json"
    assert headers["server"] == "nginx"  # server_tokens off: no version
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["type"].startswith("https://cleave.dev/problems/")
    assert problem["title"] and problem["detail"]
    assert b"<html" not in body.lower()
    if status >= 500:
        assert int(headers["retry-after"]) >= 1


def test_every_error_nginx_answers_itself_has_its_problem_page():
    conf = render_nginx([Route("users", "/api/users/", ("users:80",))])

    for status, _title, _detail in GATEWAY_ERRORS:
        assert f"error_page {status} /_cleave/errors/{status};" in conf
        assert f"return {status} '" in conf
    assert "error_page 494 =431 /_cleave/errors/431;" in conf
    assert "server_tokens off;" in conf


# --- the plan of a local split -------------------------------------------------------


def test_a_layout_puts_every_context_in_exactly_one_group():
    groups = split.parse_layout(
        "users,catalog orders,payments,notifications,analytics inventory", CONTEXTS
    )

    assert [g.contexts for g in groups] == [
        ["users", "catalog"],
        ["orders", "payments", "notifications", "analytics"],
        ["inventory"],
    ]
    assert [g.contexts for g in split.parse_layout("", CONTEXTS)] == [[c] for c in CONTEXTS]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("users,catalog,nope", "unknown contexts ['nope']"),
        ("users users,catalog", "more than one group"),
        ("users,catalog,inventory", "leaves out"),
    ],
)
def test_a_bad_layout_is_refused_with_the_reason(layout, message):
    with pytest.raises(split.SplitError, match=re.escape(message)):
        split.parse_layout(layout, CONTEXTS)


def test_each_group_serves_its_contexts_on_its_own_files_and_calls_the_others(tmp_path):
    plan = split.make_plan(
        root=Path("."),
        data_dir=tmp_path,
        port=8000,
        layout="users,catalog orders,payments,notifications,analytics inventory",
        known=CONTEXTS,
        env={"PATH": "/usr/bin"},
    )

    shop, orders, inventory = plan.groups
    assert (shop.port, orders.port, inventory.port) == (8001, 8002, 8003)
    assert orders.env["CLEAVE_CONTEXTS"] == "orders,payments,notifications,analytics"
    assert orders.env["CLEAVE_EVENT_TRANSPORT"] == "celery"
    # behind the gateway: the entry it appends to X-Forwarded-For is the client's address
    assert {g.env["CLEAVE_TRUSTED_PROXIES"] for g in plan.groups} == {"1"}
    assert orders.env["INVENTORY_SERVICE_URL"] == "http://127.0.0.1:8003"
    assert orders.env["USERS_SERVICE_URL"] == "http://127.0.0.1:8001"
    assert "ORDERS_SERVICE_URL" not in orders.env
    assert orders.env["ORDERS_DATABASE_URL"].endswith(
        "split/orders-payments-notifications-analytics/orders.sqlite3"
    )
    # one default alias for all: operators and their sessions
    assert {g.env["DATABASE_URL"] for g in plan.groups} == {
        f"sqlite:///{tmp_path / 'split' / 'default.sqlite3'}"
    }
    # the split's files (secrets, mail, static files) are its own
    assert {g.env["CLEAVE_DATA_DIR"] for g in plan.groups} == {str(tmp_path / "split")}
    # the admin console: every context and every group's database, calls over HTTP
    console = plan.admin_env
    assert "CLEAVE_CONTEXTS" not in console
    assert console["ORDERS_DATABASE_URL"] == orders.env["ORDERS_DATABASE_URL"]
    assert console["INVENTORY_DATABASE_URL"] == inventory.env["INVENTORY_DATABASE_URL"]
    assert console["ORDERS_SERVICE_URL"] == "http://127.0.0.1:8002"
    assert console["CLEAVE_EMBEDDED_SCHEDULER"] == "off"
    assert plan.admin_port == 8004
    assert plan.base_env["ADMIN_SERVICE_URL"] == "http://127.0.0.1:8004"
    lines = split.env_lines(plan)
    assert f"ORDERS_DATABASE_URL={orders.env['ORDERS_DATABASE_URL']}" in lines
    assert "CLEAVE_CONTEXTS" not in "\n".join(lines)
    names = [name for name, _argv, _env in plan.commands()]
    assert names[-2:] == ["admin.web", "gateway"]
    # the web server's scheduler sweeps the outbox: no relay process of its own
    assert names[:3] == [
        "users-catalog.web",
        "users-catalog.worker",
        "orders-payments-notifications-analytics.web",
    ]
    worker = dict((name, argv) for name, argv, _env in plan.commands())["inventory.worker"]
    assert worker[worker.index("--contexts") + 1] == "inventory"


def test_a_database_url_given_for_a_context_is_kept(tmp_path):
    plan = split.make_plan(
        root=Path("."),
        data_dir=tmp_path,
        port=8000,
        layout="",
        known=CONTEXTS,
        env={"ORDERS_DATABASE_URL": "mysql://root@127.0.0.1:3306/shop_orders"},
    )

    orders = next(group for group in plan.groups if group.name == "orders")
    assert orders.env["ORDERS_DATABASE_URL"] == "mysql://root@127.0.0.1:3306/shop_orders"


def test_the_split_refuses_to_start_on_a_busy_port(tmp_path):
    import socket

    plan = split.make_plan(
        root=Path("."), data_dir=tmp_path, port=free_port(), layout="", known=CONTEXTS, env={}
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", plan.groups[0].port))
        taken.listen()
        with pytest.raises(split.SplitError, match="in use"):
            split.preflight(plan)


def test_run_split_refuses_a_process_already_narrowed(settings):
    settings.CLEAVE_CONTEXTS = ["users"]
    with pytest.raises(CommandError, match="unset CLEAVE_CONTEXTS"):
        call_command("run_split", "--port", "8000")
