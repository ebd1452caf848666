"""
A stand-in for a Consul agent, for tests: no Consul server can be installed on
the project's machines.

    with ConsulStandIn(check_interval=0.2) as consul:
        register("catalog", url, addr=consul.addr)
        ...
        consul.received("GET", "/v1/health/service/catalog")

It is a threaded HTTP server on 127.0.0.1 (a free port) implementing exactly
the endpoints Cleave uses, with the payloads of Consul's HTTP API:

- `PUT /v1/agent/service/register`: a service definition (fields matched
  without regard to case or underscores, as Consul's decoder does; `Check`
  and `Checks`); 200 with an empty body, 400 when the name or a check's
  interval is missing. Registering an id again replaces it.
- `PUT /v1/agent/service/deregister/<id>`: 200, or 404 for an unknown id.
- `GET /v1/health/service/<name>`: a list of `{Node, Service, Checks}` with
  `X-Consul-Index`; `?passing` (also `=1`, `=true`) keeps only the entries
  whose checks all pass, the node's `serfHealth` check included.

The agent runs each registered HTTP check itself, as Consul does: one thread
per check, a first run at a random point within the interval, then one run an
interval after the previous one ended; a GET of the check's URL within its
timeout sets the check passing on a 2xx answer, warning on 429, and critical
on anything else or no answer. A check starts critical (or at its `Status`).
`check_interval` replaces every check's interval so tests need not wait the
registered 10 s; timeouts stay as registered.

Not implemented: blocking queries (`?index` is answered at once), other
endpoints (404), ACLs, and the reaping of services critical for longer than
`DeregisterCriticalServiceAfter` (at least a minute in Consul); the value is
kept in the check's definition.

Every request is recorded (`received`). Leaving the `with` block stops the
server, its request threads and every check thread.
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests

_PASSING, _WARNING, _CRITICAL = "passing", "warning", "critical"
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
# Consul's default when a check names no timeout
_DEFAULT_CHECK_TIMEOUT = 10.0


def parse_duration(text: str | int | float) -> float:
    """A Go duration ("10s", "1m30s", "250ms") in seconds; a bare number is nanoseconds."""
    if isinstance(text, int | float):
        return text / 1e9
    parts = re.findall(r"([\d.]+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def _field(data: dict[str, Any], name: str, default: Any = None) -> Any:
    """`data[name]`, matching keys as Consul's decoder does (any case, snake_case too)."""
    wanted = name.lower()
    for key, value in data.items():
        if key.replace("_", "").lower() == wanted:
            return value
    return default


@dataclass
class Received:
    """One request the stand-in answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class _Check:
    check_id: str
    name: str
    service_id: str
    service_name: str
    http: str
    interval: float
    timeout: float
    definition: dict[str, Any]
    status: str
    output: str = ""
    create_index: int = 0
    modify_index: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


@dataclass
class _Service:
    id: str
    name: str
    address: str
    port: int
    tags: list[str]
    meta: dict[str, str]
    checks: list[_Check]
    create_index: int = 0
    modify_index: int = 0


class _BadRequest(Exception):
    pass


class ConsulStandIn:
    """A Consul agent (one node, one datacenter) for the endpoints Cleave uses."""

    def __init__(
        self, *, check_interval: float | None = None, node: str = "standin", dc: str = "dc1"
    ) -> None:
        self.check_interval = check_interval
        self.node = node
        self.node_id = str(uuid.uuid4())
        self.dc = dc
        self._lock = threading.Lock()
        self._services: dict[str, _Service] = {}
        self._received: list[Received] = []
        self._index = 1
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._serving: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------

    def __enter__(self) -> ConsulStandIn:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        standin = self

        class Handler(_Handler):
            agent = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # request threads are joined by server_close()
        self._server.daemon_threads = False
        self._serving = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="consul-standin"
        )
        self._serving.start()

    def stop(self) -> None:
        with self._lock:
            for service in self._services.values():
                for check in service.checks:
                    check.stop.set()
            self._services.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._serving.join()
            self._server = None
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    @property
    def port(self) -> int:
        assert self._server is not None, "the stand-in is not running"
        return self._server.server_address[1]

    @property
    def addr(self) -> str:
        """What CONSUL_HTTP_ADDR would say."""
        return f"http://127.0.0.1:{self.port}"

    # --- what tests look at ---------------------------------------------------------

    def received(self, method: str | None = None, path: str | None = None) -> list[Received]:
        """The requests answered so far, optionally only those of one method and path."""
        with self._lock:
            return [
                r
                for r in self._received
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def service(self, service_id: str) -> dict[str, Any] | None:
        """The registration `service_id` as /v1/health/service shows its `Service`, or None."""
        with self._lock:
            service = self._services.get(service_id)
            return self._service_json(service) if service else None

    def checks(self, service_id: str) -> list[dict[str, Any]]:
        """The checks of registration `service_id` as /v1/health/service shows them."""
        with self._lock:
            service = self._services.get(service_id)
            return [self._check_json(c) for c in service.checks] if service else []

    def status(self, service_id: str) -> str | None:
        """The status of the registration's first check (None: not registered)."""
        checks = self.checks(service_id)
        return checks[0]["Status"] if checks else None

    # --- the endpoints ---------------------------------------------------------------

    def record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    def register(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _BadRequest("Request decode failed: expected a JSON object")
        name = _field(body, "Name")
        if not name:
            raise _BadRequest("Missing service name")
        service_id = _field(body, "ID") or name
        definitions = []
        if _field(body, "Check"):
            definitions.append(_field(body, "Check"))
        definitions.extend(_field(body, "Checks") or [])
        checks = [
            self._check(service_id, name, definition, n, len(definitions))
            for n, definition in enumerate(definitions, start=1)
        ]
        with self._lock:
            self._index += 1
            old = self._services.pop(service_id, None)
            if old is not None:
                for check in old.checks:
                    check.stop.set()
            for check in checks:
                check.create_index = check.modify_index = self._index
            service = _Service(
                id=service_id,
                name=name,
                address=_field(body, "Address") or "",
                port=int(_field(body, "Port") or 0),
                tags=list(_field(body, "Tags") or []),
                meta=dict(_field(body, "Meta") or {}),
                checks=checks,
                create_index=self._index,
                modify_index=self._index,
            )
            self._services[service_id] = service
            for check in checks:
                check.thread = threading.Thread(
                    target=self._run_check, args=(check,), name=f"check {check.check_id}"
                )
                self._threads.append(check.thread)
                check.thread.start()

    def _check(
        self, service_id: str, service_name: str, definition: Any, n: int, of: int
    ) -> _Check:
        if not isinstance(definition, dict):
            raise _BadRequest("Invalid check: expected a JSON object")
        http = _field(definition, "HTTP")
        if not http:
            # only HTTP checks are used by Cleave, so only they are run here
            raise _BadRequest("Invalid check: the stand-in runs HTTP checks only")
        try:
            interval = parse_duration(_field(definition, "Interval") or "0s")
            timeout_text = _field(definition, "Timeout")
            timeout = parse_duration(timeout_text) if timeout_text else _DEFAULT_CHECK_TIMEOUT
        except ValueError as exc:
            raise _BadRequest(f"Invalid check: {exc}") from None
        if interval <= 0:
            raise _BadRequest("Invalid check: Interval must be > 0 for Script, HTTP or TCP checks")
        check_id = _field(definition, "CheckID") or _field(definition, "ID")
        if not check_id:
            # Consul numbers a service's checks only when it has several
            check_id = f"service:{service_id}" + (f":{n}" if of > 1 else "")
        status = _field(definition, "Status") or _CRITICAL
        if status not in (_PASSING, _WARNING, _CRITICAL):
            raise _BadRequest(f"Invalid check: status {status!r}")
        return _Check(
            check_id=check_id,
            name=_field(definition, "Name") or f"Service '{service_name}' check",
            service_id=service_id,
            service_name=service_name,
            http=http,
            interval=self.check_interval or interval,
            timeout=timeout,
            definition=definition,
            status=status,
        )

    def deregister(self, service_id: str) -> bool:
        with self._lock:
            service = self._services.pop(service_id, None)
            if service is None:
                return False
            self._index += 1
            for check in service.checks:
                check.stop.set()
            return True

    def health(self, name: str, passing: bool) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            entries = []
            for service in sorted(self._services.values(), key=lambda s: s.id):
                if service.name != name:
                    continue
                checks = [self._node_check(), *(self._check_json(c) for c in service.checks)]
                if passing and any(c["Status"] != _PASSING for c in checks):
                    continue
                entries.append(
                    {
                        "Node": self._node_json(),
                        "Service": self._service_json(service),
                        "Checks": checks,
                    }
                )
            return self._index, entries

    # --- checks ----------------------------------------------------------------------

    def _run_check(self, check: _Check) -> None:
        with requests.Session() as session:
            # the check talks to the instance directly, as the agent would
            session.trust_env = False
            delay = random.uniform(0, check.interval)
            while not check.stop.wait(delay):
                status, output = self._probe(session, check)
                with self._lock:
                    if check.stop.is_set():
                        return
                    if status != check.status:
                        self._index += 1
                        check.modify_index = self._index
                    check.status, check.output = status, output
                delay = check.interval

    @staticmethod
    def _probe(session: requests.Session, check: _Check) -> tuple[str, str]:
        try:
            response = session.get(
                check.http,
                timeout=check.timeout,
                headers={"User-Agent": "Consul Health Check", "Accept": "text/plain, text/*, */*"},
            )
        except requests.RequestException as exc:
            return _CRITICAL, f'Get "{check.http}": {exc}'
        output = f"HTTP GET {check.http}: {response.status_code} {response.reason} Output: "
        output += response.text[:4096]
        if 200 <= response.status_code < 300:
            return _PASSING, output
        if response.status_code == 429:
            return _WARNING, output
        return _CRITICAL, output

    # --- payloads --------------------------------------------------------------------

    def _node_json(self) -> dict[str, Any]:
        return {
            "ID": self.node_id,
            "Node": self.node,
            "Address": "127.0.0.1",
            "Datacenter": self.dc,
            "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"},
            "Meta": {},
            "CreateIndex": 1,
            "ModifyIndex": 1,
        }

    def _node_check(self) -> dict[str, Any]:
        return {
            "Node": self.node,
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": _PASSING,
            "Notes": "",
            "Output": "Agent alive and reachable",
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "Type": "",
            "Definition": {},
            "CreateIndex": 1,
            "ModifyIndex": 1,
        }

    @staticmethod
    def _service_json(service: _Service) -> dict[str, Any]:
        return {
            "ID": service.id,
            "Service": service.name,
            "Tags": list(service.tags),
            "Address": service.address,
            "Meta": dict(service.meta),
            "Port": service.port,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
            "CreateIndex": service.create_index,
            "ModifyIndex": service.modify_index,
        }

    def _check_json(self, check: _Check) -> dict[str, Any]:
        return {
            "Node": self.node,
            "CheckID": check.check_id,
            "Name": check.name,
            "Status": check.status,
            "Notes": "",
            "Output": check.output,
            "ServiceID": check.service_id,
            "ServiceName": check.service_name,
            "ServiceTags": [],
            "Type": "http",
            "Interval": _field(check.definition, "Interval"),
            "Timeout": _field(check.definition, "Timeout") or "",
            "Definition": dict(check.definition),
            "CreateIndex": check.create_index,
            "ModifyIndex": check.modify_index,
        }


class _Handler(BaseHTTPRequestHandler):
    agent: ConsulStandIn
    server_version = "Consul-StandIn"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests' output stays readable

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.agent.record(Received(method, path, query, body))
        try:
            self._route(method, path, query, body)
        except _BadRequest as exc:
            self._text(400, str(exc))

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        if path == "/v1/agent/service/register":
            if method != "PUT":
                return self._text(405, f"method {method} not allowed")
            if isinstance(body, str):
                raise _BadRequest(f"Request decode failed: {body[:100]}")
            self.agent.register(body)
            return self._text(200, "")
        if path.startswith("/v1/agent/service/deregister/"):
            if method != "PUT":
                return self._text(405, f"method {method} not allowed")
            service_id = path.removeprefix("/v1/agent/service/deregister/")
            if not self.agent.deregister(service_id):
                return self._text(
                    404,
                    f'Unknown service ID "{service_id}". '
                    "Ensure that the service ID is passed, not the service name.",
                )
            return self._text(200, "")
        if path.startswith("/v1/health/service/"):
            if method != "GET":
                return self._text(405, f"method {method} not allowed")
            index, entries = self.agent.health(
                path.removeprefix("/v1/health/service/"), _passing(query)
            )
            payload = json.dumps(entries).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Consul-Index", str(index))
            self.send_header("X-Consul-KnownLeader", "true")
            self.send_header("X-Consul-LastContact", "0")
            self.end_headers()
            self.wfile.write(payload)
            return None
        return self._text(404, "404 page not found")

    def _text(self, status: int, text: str) -> None:
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _passing(query: dict[str, list[str]]) -> bool:
    """`?passing` as Consul reads it: present and empty means true, else a boolean."""
    if "passing" not in query:
        return False
    value = query["passing"][0].lower()
    if value in ("", "1", "t", "true"):
        return True
    if value in ("0", "f", "false"):
        return False
    raise _BadRequest(f"Invalid value for ?passing: {value!r}")
