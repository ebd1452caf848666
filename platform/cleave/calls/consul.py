"""
Consul: find the healthy instances of a context, and register this process's.

`ConsulSource().instances("catalog")` asks the Consul agent at
`CONSUL_HTTP_ADDR` for the instances of service `catalog` whose checks all
pass, and keeps the answer `CLEAVE_CONSUL_CACHE_SECONDS`; when Consul cannot
be reached it goes on with the last list it had. `register_local(bind)`, called
by gunicorn's master once it listens (config/gunicorn.py), registers every
context the process serves under its label, with an HTTP check on `/health`
that Consul runs every 10 s; `deregister_local(ids)` removes them on a clean stop.
Both do nothing unless `CLEAVE_DISCOVERY=consul`, which is also what makes the
service client look instances up here (`cleave.calls.discovery`).

The HTTP calls go through py-consul, the optional extra `consul`
(`pip install -e '.[consul]'`), imported only when Consul is used: a process
with `CLEAVE_DISCOVERY=env` may import this module (gunicorn's hooks do) and
never loads py-consul. What is written here is only what that client does not
know: the cache and its fallback, the ids and checks of Cleave's
registrations, and the address this process is reached at. No Consul
server runs on the project's machines, so this module is tested against a
stand-in that implements the agent and health endpoints used
(tests/support/consul_standin.py).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http.request import validate_host
from gunicorn.util import parse_address

from cleave.core.errors import NoHealthyInstances, ServiceUnavailable

if TYPE_CHECKING:
    import consul

logger = logging.getLogger(__name__)

# Seconds a request to the Consul agent may take: a lookup happens on the path
# of a service call, whose own budget is a few seconds.
CONSUL_TIMEOUT = 2.0
# The check Consul runs on each registered instance, and how long an instance
# may stay critical before Consul removes it (when its process died unannounced).
CHECK_INTERVAL = "10s"
CHECK_TIMEOUT = "3s"
DEREGISTER_CRITICAL_AFTER = "1m"


def _py_consul() -> ModuleType:
    """py-consul, the optional extra `consul`; a clear error naming it when it is missing."""
    try:
        import consul
    except ImportError:
        raise ImproperlyConfigured(
            "Consul discovery needs the optional extra `consul` (py-consul): "
            "pip install -e '.[consul]'"
        ) from None
    return consul


def _consul_errors() -> tuple[type[Exception], ...]:
    """
    What "Consul could not be used" looks like from py-consul: no connection or
    no answer in time (requests), or an error status from the agent (no leader,
    ACL denied).
    """
    return (requests.RequestException, _py_consul().ConsulException)


def client(addr: str | None = None) -> consul.Consul:
    """A py-consul client for `addr` (`host:port` or a URL; default `CONSUL_HTTP_ADDR`)."""
    addr = addr or settings.CONSUL_HTTP_ADDR
    # urlsplit only finds a host after "//"
    parts = urlsplit(addr if "//" in addr else f"//{addr}")
    try:
        port = parts.port or 8500
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.scheme not in ("", "http", "https"):
        raise ImproperlyConfigured(
            f"CONSUL_HTTP_ADDR must be host:port or http(s)://host:port, not {addr!r}"
        )
    return _py_consul().Consul(
        host=parts.hostname,
        port=port,
        scheme=parts.scheme or "http",
        connections_timeout=CONSUL_TIMEOUT,
    )


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class _Known:
    urls: list[str]
    fetched_at: float


class ConsulSource:
    """
    The base URLs of the passing instances of a service, from Consul, cached.

    One source is shared by the threads of a process. A label's answer is
    kept `cache_seconds` (on `clock`); when it is older, the first thread to
    ask refreshes it while the others wait for that answer instead of asking
    Consul too.
    """

    def __init__(
        self,
        addr: str | None = None,
        *,
        cache_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.addr = addr or settings.CONSUL_HTTP_ADDR
        self.cache_seconds = (
            settings.CLEAVE_CONSUL_CACHE_SECONDS if cache_seconds is None else cache_seconds
        )
        self.clock = clock
        self._known: dict[str, _Known] = {}
        self._lock = threading.Lock()
        self._refreshing: dict[str, threading.Lock] = {}
        # requests does not promise that one Session is safe across threads
        self._local = threading.local()
        # a malformed CONSUL_HTTP_ADDR is refused here, not at the first call
        self._local.client = client(self.addr)

    def _client(self) -> consul.Consul:
        found = getattr(self._local, "client", None)
        if found is None:
            found = self._local.client = client(self.addr)
        return found

    def _fresh(self, label: str) -> _Known | None:
        known = self._known.get(label)
        if known is not None and self.clock() - known.fetched_at < self.cache_seconds:
            return known
        return None

    def instances(self, label: str) -> list[str]:
        """
        The base URLs (`http://host:port`) of `label`'s passing instances, sorted.

        Raises NoHealthyInstances when Consul knows none, and ServiceUnavailable
        when Consul cannot be reached and no earlier list is known.
        """
        with self._lock:
            known = self._fresh(label)
            refreshing = self._refreshing.setdefault(label, threading.Lock())
        if known is None:
            with refreshing:
                with self._lock:
                    known = self._fresh(label)
                if known is None:
                    known = self._refresh(label)
        if not known.urls:
            raise NoHealthyInstances(label)
        return list(known.urls)

    def _refresh(self, label: str) -> _Known:
        try:
            _index, entries = self._client().health.service(label, passing=True)
        except _consul_errors() as exc:
            with self._lock:
                stale = self._known.get(label)
                if stale is None or not stale.urls:
                    raise ServiceUnavailable(label, message=f"consul unreachable: {exc}") from exc
                # Ask Consul again only after another cache period, so an
                # outage does not add a failed request to every call.
                stale.fetched_at = self.clock()
            logger.warning(
                "consul unreachable (%s): using the last known instances of %s: %s",
                exc,
                label,
                ", ".join(stale.urls),
            )
            return stale
        known = _Known(urls=_urls(entries or []), fetched_at=self.clock())
        with self._lock:
            self._known[label] = known
        return known


def _urls(entries: list[dict[str, Any]]) -> list[str]:
    """Base URLs from the entries of /v1/health/service (the service's address, else its node's)."""
    urls = set()
    for entry in entries:
        service = entry["Service"]
        host = service.get("Address") or entry["Node"]["Address"]
        urls.add(_base_url(host, service["Port"]))
    return sorted(urls)


# --- registration ------------------------------------------------------------------


def register(
    label: str, url: str, *, service_id: str | None = None, addr: str | None = None
) -> str:
    """
    Register service `label` at `url`'s host and port, with an HTTP check on
    `<url>/health`; return the registration's id (`<label>-<host>-<port>`).

    Registering the same id again replaces the registration. Raises
    `requests.RequestException` or py-consul's `ConsulException` when Consul
    cannot be reached or refuses it.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.scheme not in ("http", "https"):
        raise ValueError(f"cannot register {label} at {url!r}: not an http(s) URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    service_id = service_id or f"{label}-{host}-{port}"
    py_consul = _py_consul()
    check = py_consul.Check.http(
        url.rstrip("/") + "/health",
        CHECK_INTERVAL,
        timeout=CHECK_TIMEOUT,
        deregister=DEREGISTER_CRITICAL_AFTER,
    )
    accepted = client(addr).agent.service.register(
        label, service_id=service_id, address=host, port=port, check=check
    )
    if not accepted:
        raise py_consul.ConsulException(f"consul did not accept the registration of {service_id}")
    return service_id


def deregister(service_id: str, *, addr: str | None = None) -> None:
    """Remove registration `service_id` and its check; an id Consul does not know is left as is."""
    if not client(addr).agent.service.deregister(service_id):
        logger.info("consul: %s was not registered", service_id)


def advertised_url(bind: str) -> str:
    """
    The base URL other processes reach this one at: `CLEAVE_ADVERTISE_URL`,
    else `http://host:port` of a gunicorn bind (`host:port`, `[::1]:port`), with
    the machine's host name when the bind is every interface (0.0.0.0, [::]).
    """
    if settings.CLEAVE_ADVERTISE_URL:
        return settings.CLEAVE_ADVERTISE_URL.rstrip("/")
    address = parse_address(bind)
    if not isinstance(address, tuple):
        raise ValueError(
            f"cannot advertise the bind {bind!r} (a Unix socket or a file descriptor): "
            "set CLEAVE_ADVERTISE_URL"
        )
    host, port = address
    # a bind on every interface names no address another machine could use
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognised, not bound
        host = socket.gethostname()
    return _base_url(host, port)


def register_local(bind: str) -> list[str]:
    """
    Register every context this process serves at `advertised_url(bind)`; return the ids.

    Nothing happens unless CLEAVE_DISCOVERY is "consul". When Consul cannot
    be reached or refuses a registration, the error is logged and the process
    keeps serving: the gateway and callers given its URL still reach it, and
    stopping would turn a Consul outage into an outage of every process that
    starts meanwhile. Such an instance is not discoverable until it is
    restarted; the error says so. A bind that cannot be advertised (a Unix
    socket without CLEAVE_ADVERTISE_URL) is a configuration error and raises.
    """
    if settings.CLEAVE_DISCOVERY != "consul":
        return []
    url = advertised_url(bind)
    _warn_unless_allowed_host(url)
    ids = []
    for label in settings.CLEAVE_CONTEXTS:
        try:
            ids.append(register(label, url))
        except _consul_errors() as exc:
            logger.error(
                "consul: could not register %s at %s with %s (%s); it is not discoverable "
                "through Consul until this process is restarted",
                label,
                url,
                settings.CONSUL_HTTP_ADDR,
                exc,
            )
        else:
            logger.info("consul: registered %s at %s", label, url)
    return ids


def _warn_unless_allowed_host(url: str) -> None:
    """Log an error when Django would refuse requests for `url`'s host (its check included)."""
    host = urlsplit(url).hostname or ""
    domain = f"[{host}]" if ":" in host else host
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # what Django allows then
    if not validate_host(domain, allowed):
        logger.error(
            "consul: %s is not in DJANGO_ALLOWED_HOSTS, so Django answers 400 to the check "
            "on %s/health and to every call: the instance will never pass its check",
            domain,
            url,
        )


def deregister_local(ids: list[str]) -> None:
    """Remove the registrations `register_local` made; failures are logged."""
    if settings.CLEAVE_DISCOVERY != "consul":
        return
    for service_id in ids:
        try:
            deregister(service_id)
        except _consul_errors() as exc:
            logger.error(
                "consul: could not deregister %s (%s); Consul removes it %s after its "
                "check turns critical",
                service_id,
                exc,
                DEREGISTER_CRITICAL_AFTER,
            )
        else:
            logger.info("consul: deregistered %s", service_id)
