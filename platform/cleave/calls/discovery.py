"""
Where the instances of a remote context are, and which one to call next.

A *source* lists a context's base URLs: `EnvSource` reads
`<LABEL>_SERVICE_URL` (one URL or several, comma-separated; unset, Kubernetes
DNS `http://<label>`, a Service on port 80 that balances for us), and
`cleave.calls.consul.ConsulSource` asks Consul for passing instances
(`CLEAVE_DISCOVERY=consul`).

The `Balancer` spreads calls round-robin over the instances that are not
ejected. Health is checked both ways: passively, an instance that refused a
connection or timed out is ejected at once; actively, a daemon thread asks
each ejected instance's `/ready` every `CLEAVE_DISCOVERY_PROBE_INTERVAL`
seconds and takes it back when it answers 200. Ejection is per instance while
the circuit breaker is per target: one dead instance out of three must cost
nothing but its own calls, while a target whose every instance fails is one
dependency that is down, which is what the breaker (and its metric) is for.
When every instance is ejected the balancer still answers with the next one
in turn, so the breaker, not discovery, decides that the target is down.

Written by hand: no maintained client-side load balancer for `requests`
covers a static list, Consul and passive plus active health checks.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable
from typing import Protocol

import requests

from cleave.core import threads
from cleave.core.threads import Service

logger = logging.getLogger(__name__)


class Source(Protocol):
    def instances(self, label: str) -> list[str]: ...


def service_urls(label: str) -> list[str]:
    """The base URLs `<LABEL>_SERVICE_URL` lists (empty when unset)."""
    raw = os.environ.get(f"{label.upper()}_SERVICE_URL", "")
    return [url.strip().rstrip("/") for url in raw.split(",") if url.strip()]


def default_url(label: str) -> str:
    """Kubernetes DNS: one Service per context, named after it, listening on port 80."""
    return f"http://{label}"


class EnvSource:
    """`<LABEL>_SERVICE_URL`, else Kubernetes DNS."""

    def instances(self, label: str) -> list[str]:
        return service_urls(label) or [default_url(label)]


def probe_ready(url: str, timeout: float = 1.0) -> bool:
    """Whether the instance at `url` answers its readiness probe with 200."""
    try:
        return requests.get(f"{url}/ready", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


class Balancer:
    """Round-robin over a source's instances, skipping ejected ones (see the module docstring)."""

    def __init__(
        self,
        source: Source,
        *,
        probe: Callable[[str], bool] = probe_ready,
        probe_interval: float = 2.0,
        start_prober: bool = True,
    ) -> None:
        self.source = source
        self.probe = probe
        self.probe_interval = probe_interval
        self._start_prober = start_prober
        self._lock = threading.Lock()
        self._counters: dict[str, itertools.count] = {}
        self._ejected: set[str] = set()

    def choose(self, label: str) -> str:
        """The base URL to call next for `label` (may raise the source's failures)."""
        urls = self.source.instances(label)
        with self._lock:
            counter = self._counters.setdefault(label, itertools.count())
            healthy = [url for url in urls if url not in self._ejected] or urls
            return healthy[next(counter) % len(healthy)]

    def failed(self, url: str) -> None:
        """The instance refused a connection or did not answer: skip it until it is ready."""
        with self._lock:
            if url in self._ejected:
                return
            self._ejected.add(url)
        if self._start_prober:
            # one prober per balancer, until nothing is ejected (the thread owner's)
            threads.per_process(Prober, self, key=id(self))
        logger.warning("Instance %s ejected until its /ready answers", url)

    def ejected(self) -> set[str]:
        with self._lock:
            return set(self._ejected)

    def probe_once(self) -> None:
        """Ask every ejected instance whether it is ready; take back those that are."""
        for url in self.ejected():
            if self.probe(url):
                with self._lock:
                    self._ejected.discard(url)
                logger.info("Instance %s is ready again", url)

    def stop(self) -> None:
        threads.stop(Prober, key=id(self))


class Prober(Service):
    """Asks a balancer's ejected instances whether they are ready, until none is left."""

    name = "cleave-discovery-probe"

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        super().__init__()

    def run(self) -> None:
        while not self.wait(self.balancer.probe_interval):
            try:
                self.balancer.probe_once()
            except Exception:  # the prober must outlive any one failure
                logger.exception("Instance probe failed")
            if not self.balancer.ejected():
                return  # nothing left to watch; the next ejection starts a new prober


def make_source(kind: str) -> Source:
    if kind == "consul":
        # loaded only when Consul is the source: py-consul and its session
        # stay out of every other process
        from cleave.calls.consul import ConsulSource

        return ConsulSource()
    return EnvSource()
