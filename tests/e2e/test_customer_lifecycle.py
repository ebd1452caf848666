"""
A customer who registers, verifies, buys, renames and deletes themselves
leaves every context consistent (tests/support/lifecycle.py), on each transport:

- `inprocess`: pytest-django's live server on the suite's databases (SQLite,
  or PostgreSQL and MariaDB in CI's server-backed pass);
- `celery` over RabbitMQ: an installation in subprocesses (gunicorn, a Celery
  worker for every context's queue, a relay), torn down after.
"""

from __future__ import annotations

import email

import pytest
from django.core.management import call_command
from django.db import connections

from cleave.testing import flows
from tests.integration.conftest import live_secrets, make_live, migrated_template  # noqa: F401
from tests.support.lifecycle import customer_lifecycle

pytestmark = [pytest.mark.e2e]


def _suite_sql(alias: str, query: str) -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute(query)
        return [tuple(row) for row in cursor.fetchall()]


@flows
def test_the_customer_lifecycle_on_the_in_process_bus(live_server, outbox_mail):
    customer_lifecycle(
        live_server.url,
        seed=lambda: call_command("seed_demo", verbosity=0),
        mail_bodies=lambda: [str(message.body) for message in outbox_mail],
        sql=_suite_sql,
    )


@pytest.mark.services
def test_the_customer_lifecycle_on_celery_workers(tmp_path, migrated_template, live_secrets):  # noqa: F811
    manager, live = make_live(tmp_path, "rabbitmq", migrated_template, live_secrets)
    try:
        live.start_worker()
        live.start_relay(command=True)
        live.start_web()
        customer_lifecycle(
            live.web_url,
            seed=lambda: live.manage("seed_demo"),
            mail_bodies=lambda: _mail_bodies(live.data_dir / "mail"),
            sql=live.sql,
        )
    finally:
        manager.__exit__(None, None, None)


def _mail_bodies(folder) -> list[str]:
    """Bodies (headers included) of the messages Django's file-based email backend wrote."""
    bodies = []
    for path in sorted(folder.glob("*.log")) if folder.exists() else []:
        for chunk in path.read_text(errors="replace").split("-" * 79):
            message = email.message_from_string(chunk.strip())
            payload = message.get_payload(decode=True)
            if payload:
                bodies.append(f"To: {message['To']}\n{payload.decode(errors='replace')}")
    return bodies
