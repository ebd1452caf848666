"""
The customer story (tests/support/story.py) on every event transport:

- `inprocess`: pytest-django's live server, the suite's databases (so it also
  runs on PostgreSQL and MariaDB in CI's server-backed pass);
- `celery` over RabbitMQ and over Redis: an installation in subprocesses (a
  gunicorn web server, a Celery worker consuming every context's queue, a
  relay), started by the fixtures, torn down after.

Either way one checkout keeps one correlation id across every context.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from cleave.core.registry import all_contexts
from cleave.messaging.models import InboxRecord, OutboxEvent
from cleave.testing import flows
from tests.integration.conftest import live_secrets, make_live, migrated_template  # noqa: F401
from tests.support.story import CHECKOUT_EVENTS, customer_story

pytestmark = [pytest.mark.e2e]


def assert_one_correlation_id(events: list[dict], order: dict) -> None:
    """Every event of one approved checkout, whichever context published it, carries its id."""
    checkout = [e for e in events if e["data"].get("order_id") == order["id"]]
    assert {e["type"]: e["source"] for e in checkout} == CHECKOUT_EVENTS
    assert {e["correlation_id"] for e in checkout} == {order["correlation_id"]}


@flows
def test_the_customer_story_on_the_in_process_bus(live_server, outbox_mail):
    result = customer_story(
        live_server.url,
        seed=lambda: call_command("seed_demo", verbosity=0),
        mail_subjects=lambda: [message.subject for message in outbox_mail],
        create_operator=lambda *args: get_user_model().objects.create_superuser(*args),
    )

    events = [
        {**row.envelope().to_dict(), "source": row.source}
        for cfg in all_contexts()
        for row in OutboxEvent.objects.using(cfg.database).all()
    ]
    assert_one_correlation_id(events, result.confirmed_order)
    confirmed = OutboxEvent.objects.using("orders").get(
        type="order.confirmed", data__order_id=result.confirmed_order["id"]
    )
    assert InboxRecord.objects.using("analytics").filter(event_id=confirmed.id).count() == 1


@pytest.mark.services
@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_the_customer_story_on_celery_workers(broker, tmp_path, migrated_template, live_secrets):  # noqa: F811
    manager, live = make_live(tmp_path, broker, migrated_template, live_secrets)
    try:
        live.start_worker()
        live.start_relay(command=True)
        live.start_web()

        result = customer_story(
            live.web_url,
            seed=lambda: live.manage("seed_demo"),
            mail_subjects=lambda: _mail_subjects(live.data_dir / "mail"),
            create_operator=live.create_operator,
        )

        events = []
        for label in ["users", "catalog", "inventory", "orders", "payments"]:
            for type_, source, data, correlation_id in live.sql(
                label, "SELECT type, source, data, correlation_id FROM cleave_outboxevent"
            ):
                events.append(
                    {
                        "type": type_,
                        "source": source,
                        "data": _json(data),
                        "correlation_id": correlation_id,
                    }
                )
        assert_one_correlation_id(events, result.confirmed_order)
        pending = live.scalar(
            "orders", "SELECT count(*) FROM cleave_outboxevent WHERE status = 'pending'"
        )
        assert pending == 0
        (confirmed_id,) = [
            row[0]
            for row in live.sql(
                "orders", "SELECT id, data FROM cleave_outboxevent WHERE type = 'order.confirmed'"
            )
            if _json(row[1])["order_id"] == result.confirmed_order["id"]
        ]
        assert live.inbox("analytics", str(uuid.UUID(confirmed_id))) == 1

        # the read model the workers built incrementally, rebuilt from the event log
        def read_model():
            return (
                live.sql("analytics", "SELECT name, value FROM analytics_counter ORDER BY name"),
                live.sql(
                    "analytics",
                    "SELECT product_id, sku, quantity, revenue FROM analytics_productsales "
                    "ORDER BY product_id",
                ),
            )

        incremental = read_model()
        out = live.manage("events", "replay", "--subscriber", "analytics", "--reset").stdout
        assert "after a reset" in out
        assert read_model() == incremental
    finally:
        manager.__exit__(None, None, None)


def _json(text: str) -> dict:
    import json

    return json.loads(text)


def _mail_subjects(folder) -> list[str]:
    """Subjects of the messages Django's file-based email backend wrote."""
    import email

    subjects = []
    for path in sorted(folder.glob("*.log")) if folder.exists() else []:
        for chunk in path.read_text(errors="replace").split("-" * 79):
            message = email.message_from_string(chunk.strip())
            if message["Subject"]:
                subjects.append(
                    str(email.header.make_header(email.header.decode_header(message["Subject"])))
                )
    return subjects
