"""
Every background thread of a process, owned in one place.

Beside its requests or tasks a process runs a few long-lived threads: the
relay's outlet (publishes what this process committed), the saga monitor
(heartbeats and step timeouts) and waker (drives waiting sagas when they are
due), the discovery prober (asks an ejected instance's `/ready`), and the
periodic scheduler (relay sweep, saga recovery, expiries). Each is a
`Service`: one daemon thread per process, made through `per_process()`, by
whoever needs it first or by the bootstrap of the process's role
(`cleave.runtime.bootstrap`), made anew in a forked child (gunicorn and Celery
prefork workers) or when its thread died, listed by `running()` and stopped by
`stop_all()`.

Written by hand: the standard library gives threads, not this ownership
(one per process, restarted after a fork, stopped together).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

S = TypeVar("S", bound="Service")


class Service:
    """
    A background job of this process: one daemon thread running `run()`.

    Subclasses set `name` (the thread's) and override `run()`, a loop that
    returns once `stopping()` is true (`wait(seconds)` sleeps until then); a
    subclass that sleeps on a condition of its own overrides `wake()` to
    notify it. The thread starts when the object is made, after the
    subclass's `__init__` has set its fields (call `super().__init__()` last).
    """

    name = "cleave-service"

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self.thread.start()

    def run(self) -> None:
        raise NotImplementedError(".run() must be overridden")

    def _main(self) -> None:
        try:
            self.run()
        except Exception:  # a service that dies is made anew at its next use
            logger.exception("Background thread %s stopped", self.name)

    def alive(self) -> bool:
        """Whether this is the thread of this process, still running."""
        return os.getpid() == self.pid and self.thread.is_alive()

    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait(self, seconds: float | None) -> bool:
        """Sleep up to `seconds`; True when the service is being stopped."""
        return self._stopping.wait(seconds)

    def wake(self) -> None:
        """Make the loop look at `stopping()` now (a subclass notifies its own condition)."""

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stopping.set()
        self.wake()
        if self.thread is not threading.current_thread() and self.alive():
            self.thread.join(timeout)


_services: dict[Any, Service] = {}
_lock = threading.Lock()


def per_process(kind: type[S], *args: Any, key: Any = None, **kwargs: Any) -> S:
    """
    This process's one `kind` (for `key`, when a process has several, such as
    one prober per balancer), made with `args` when there is none alive yet.
    """
    slot = (kind, key)
    current = _services.get(slot)
    if current is None or not current.alive():
        with _lock:
            current = _services.get(slot)
            if current is None or not current.alive():
                current = _services[slot] = kind(*args, **kwargs)
    return current  # type: ignore[return-value]


def running() -> list[Service]:
    """The services of this process whose thread runs."""
    with _lock:
        return [service for service in _services.values() if service.alive()]


def stop(kind: type[Service], *, key: Any = None, timeout: float | None = 5.0) -> None:
    """Stop this process's `kind` (for `key`), if it runs."""
    with _lock:
        service = _services.pop((kind, key), None)
    if service is not None and service.alive():
        service.stop(timeout)


def stop_all(timeout: float | None = 5.0) -> None:
    """Stop every service of this process (at exit, and in tests)."""
    with _lock:
        services = list(_services.values())
        _services.clear()
    for service in services:
        if service.alive():
            service.stop(timeout)
