"""The one owner of a process's background threads."""

from __future__ import annotations

import threading

import pytest

from cleave.core import threads
from cleave.core.threads import Service


class Ticker(Service):
    name = "test-ticker"

    def __init__(self, every: float = 0.01) -> None:
        self.every = every
        self.ticks = 0
        super().__init__()

    def run(self) -> None:
        while not self.wait(self.every):
            self.ticks += 1


class Dying(Service):
    name = "test-dying"

    def run(self) -> None:
        raise SystemExit  # not an Exception: it ends the thread


@pytest.fixture(autouse=True)
def _clean():
    yield
    threads.stop(Ticker)
    threads.stop(Ticker, key="b")
    threads.stop(Dying)


def test_a_service_is_made_once_per_process_and_kind():
    first = threads.per_process(Ticker)
    again = threads.per_process(Ticker, 5.0)  # arguments count only when it is made

    assert again is first and first.alive()
    assert first.thread.name == "test-ticker" and first.thread.daemon
    assert threads.per_process(Ticker, key="b") is not first
    assert first in threads.running()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_service_whose_thread_died_is_made_anew_at_its_next_use():
    dead = threads.per_process(Dying)
    dead.thread.join(timeout=5)
    assert not dead.alive()

    assert threads.per_process(Dying) is not dead


def test_a_service_in_a_forked_child_is_not_its_parents(monkeypatch):
    parent = threads.per_process(Ticker)
    monkeypatch.setattr(threads.os, "getpid", lambda: parent.pid + 1)

    assert not parent.alive()
    child = threads.per_process(Ticker)
    assert child is not parent


def test_stop_all_ends_every_thread():
    ticker = threads.per_process(Ticker)
    other = threads.per_process(Ticker, key="b")

    threads.stop_all(timeout=5)

    assert not ticker.thread.is_alive() and not other.thread.is_alive()
    assert ticker not in threads.running()


def test_no_module_of_the_runtime_starts_a_thread_of_its_own():
    # every background thread is a Service (the prometheus port's is the library's)
    from pathlib import Path

    import cleave

    root = Path(cleave.__file__).parent
    starting = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "threading.Thread(" in path.read_text()
    )
    assert starting == ["core/threads.py", "sagas/monitor.py"], starting


def test_a_thread_waits_on_the_owner_to_stop():
    ticker = threads.per_process(Ticker, 60.0)
    stopped = threading.Event()

    def stop():
        ticker.stop(timeout=5)
        stopped.set()

    threading.Thread(target=stop).start()
    assert stopped.wait(5), "a service sleeping in wait() stops at once"
