"""
A split process must be safe to configure: it refuses to start when its
events could not reach their subscribers, probes answer whatever the Host,
workers consume only real context queues, and the gateway routes every
context. Processes are started for real where start-up is what is tested.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from cleave.messaging import subscriptions
from cleave.messaging.subscriptions import remote_subscribers

ROOT = Path(__file__).resolve().parents[3]


def manage(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")},
            "CLEAVE_DATA_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_users_only_process_on_the_in_process_transport_refuses_to_start(tmp_path):
    result = manage("check", tmp_path=tmp_path, CLEAVE_CONTEXTS="users")

    assert result.returncode != 0
    message = result.stderr
    assert "user.created" in message
    assert "orders" in message and "notifications" in message
    assert "CLEAVE_EVENT_TRANSPORT=celery" in message


def test_the_same_process_on_the_celery_transport_starts(tmp_path):
    result = manage(
        "check", tmp_path=tmp_path, CLEAVE_CONTEXTS="users", CLEAVE_EVENT_TRANSPORT="celery"
    )

    assert result.returncode == 0, result.stderr


def test_a_group_whose_events_stay_inside_it_may_use_the_in_process_transport(tmp_path):
    # inventory and payments publish nothing another context subscribes to
    result = manage("check", tmp_path=tmp_path, CLEAVE_CONTEXTS="inventory")

    assert result.returncode == 0, result.stderr


def test_remote_subscribers_are_read_from_apps_py_of_contexts_not_installed(settings):
    settings.CLEAVE_CONTEXTS = ["users"]

    found = remote_subscribers(["user.created", "user.blocked"])

    assert found == {
        "orders": ["user.created", "user.blocked"],
        "payments": ["user.blocked"],
        "notifications": ["user.created", "user.blocked"],
        "analytics": ["user.created"],
    }


def test_the_event_lock_records_exactly_the_events_each_contexts_handlers_receive():
    from django.conf import settings

    for label in settings.CLEAVE_ALL_CONTEXTS:
        handled = {
            sub.pattern
            for sub in subscriptions.all_subscriptions()
            if sub.func.__module__.startswith(f"{settings.CLEAVE_CONTEXT_PACKAGE}.{label}.")
        }
        assert set(subscriptions.consumed_by(label)) == handled, label


def test_refusal_names_the_fix(settings):
    from cleave.messaging.subscriptions import refuse_lost_events

    settings.CLEAVE_CONTEXTS = ["orders"]
    settings.CLEAVE_EVENT_TRANSPORT = "inprocess"
    with pytest.raises(ImproperlyConfigured, match="CLEAVE_EVENT_TRANSPORT=celery"):
        refuse_lost_events("orders", ["order.confirmed"])
    settings.CLEAVE_EVENT_TRANSPORT = "celery"
    refuse_lost_events("orders", ["order.confirmed"])


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_probes_answer_for_a_pod_ip_host(client, path):
    response = client.get(path, HTTP_HOST="10.244.1.17:8000")

    assert response.status_code == 200, response.content
    assert response["X-Request-ID"]


@pytest.mark.django_db(databases="__all__")
def test_other_paths_still_check_the_host(client):
    response = client.get("/api/catalog/categories", HTTP_HOST="10.244.1.17:8000")

    assert response.status_code == 400


def test_the_default_remote_url_is_the_contexts_service_on_port_80(monkeypatch):
    from cleave.calls.discovery import EnvSource

    monkeypatch.delenv("INVENTORY_SERVICE_URL", raising=False)
    assert EnvSource().instances("inventory") == ["http://inventory"]


def test_the_worker_maps_labels_to_prefixed_queues(tmp_path):
    result = manage(
        "worker",
        "--contexts",
        "orders,payments",
        "--dry-run",
        tmp_path=tmp_path,
        CLEAVE_EVENT_QUEUE_PREFIX="shop1.",
    )

    assert result.returncode == 0, result.stderr
    assert "-Q shop1.orders,shop1.payments,shop1.celery" in result.stdout


@pytest.mark.parametrize(
    ("contexts", "env", "message"),
    [
        ("orders,nope", {}, "unknown contexts ['nope']"),
        (
            "orders",
            {"CLEAVE_CONTEXTS": "users", "CLEAVE_EVENT_TRANSPORT": "celery"},
            "does not serve",
        ),
    ],
)
def test_the_worker_refuses_a_context_it_cannot_serve(tmp_path, contexts, env, message):
    result = manage("worker", "--contexts", contexts, "--dry-run", tmp_path=tmp_path, **env)

    assert result.returncode != 0
    assert message in result.stderr


def test_a_celery_worker_refuses_an_unprefixed_queue(settings):
    from cleave.messaging.broker import receiver
    from config.celery import app

    settings.CLEAVE_EVENT_QUEUE_PREFIX = "shop1."
    queues = app.amqp.queues
    chosen = queues._consume_from
    queues.select(["orders"])  # what `-Q orders` does
    try:
        with pytest.raises(ImproperlyConfigured, match="no context's queue"):
            receiver.check_queues(app)
    finally:
        queues._consume_from = chosen
