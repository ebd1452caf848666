"""
Fixtures for the tests that run a whole installation in subprocesses against a
real broker (see live.py). The databases are migrated once per session into a
template directory and copied for each test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cleave.testing import require_server
from tests.support.live import LiveSystem, live_system, own_secrets

BROKERS = {
    "rabbitmq": (
        os.environ.get("CLEAVE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
        "RabbitMQ",
        5672,
    ),
    "redis": (os.environ.get("CLEAVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/7"), "Redis", 6379),
}


@pytest.fixture(scope="session")
def live_secrets() -> dict[str, str]:
    """The test process's secrets, so tokens it mints are valid in the live system."""
    return own_secrets()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory, live_secrets) -> Path:
    """SQLite files of every alias, migrated once for the session."""
    root = tmp_path_factory.mktemp("live-template")
    template = LiveSystem(root, transport="inprocess", broker_url="memory://", secrets=live_secrets)
    template.migrate()
    return template.data_dir


def make_live(root: Path, broker: str, template: Path, secrets: dict[str, str]):
    if broker == "inprocess":
        url, transport = "memory://", "inprocess"
    else:
        url, name, port = BROKERS[broker]
        require_server(name, "127.0.0.1", port)
        transport = "celery"
        if broker == "redis":
            _forget_stale_restore_lock(url)
    manager = live_system(root, transport=transport, broker_url=url, secrets=secrets)
    system = manager.__enter__()
    for source in template.glob("*.sqlite3"):
        shutil.copy(source, system.data_dir / source.name)
    return manager, system


def _forget_stale_restore_lock(url: str) -> None:
    """
    Redis has one lock for re-queueing unacknowledged messages, shared by every
    queue. A worker SIGKILLed while holding it (an earlier test kills workers
    at any moment) leaves it for kombu's `unacked_mutex_expire`, 300 seconds,
    in which no worker of a later test could restore anything. Each test's
    queues are its own; its start is also free of that lock.
    """
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.delete("unacked_mutex")
    finally:
        client.close()


@pytest.fixture(params=["rabbitmq", "redis"])
def live(request, tmp_path, migrated_template, live_secrets):
    """A fresh installation on the Celery transport, over each broker in turn."""
    manager, system = make_live(tmp_path, request.param, migrated_template, live_secrets)
    try:
        yield system
    finally:
        manager.__exit__(None, None, None)
