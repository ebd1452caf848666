"""
One checkout in a split of three process groups on Celery is one trace: an
OTLP receiver in the test (as a collector or Jaeger would be) gets spans of
every group the checkout touched, CLIENT spans for the service calls, spans
of the Celery workers, and no span whose parent is missing. The request id
the client sent is the correlation id of every JSON log line the checkout
caused, in the web process, its worker and the other contexts' web processes,
next to the trace and span ids.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
import uuid

import pytest
import requests

from cleave.testing import require_server
from tests.integration.conftest import BROKERS, live_secrets  # noqa: F401 - the fixture
from tests.support.live import wait_until
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.running_split import Runner, delete_queues, free_base_port

pytestmark = [pytest.mark.e2e, pytest.mark.services]

LAYOUT = ["users,catalog", "orders,payments,notifications,analytics", "inventory"]
GROUPS = {"users-catalog", "orders-payments-notifications-analytics", "inventory"}
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


def test_a_split_checkout_is_one_trace_across_every_group(tmp_path, live_secrets):  # noqa: F811
    amqp = BROKERS["rabbitmq"][0]
    require_server("RabbitMQ", "127.0.0.1", 5672)
    prefix = f"t{uuid.uuid4().hex[:8]}."
    port = free_base_port(len(LAYOUT) + 2)  # the groups, the console, the gateway
    with OtlpReceiver() as otlp:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.endswith("DATABASE_URL")
            and not key.startswith(("PYTEST", "CLEAVE_", "OTEL_"))
        }
        env.update(live_secrets)
        env.update(
            CLEAVE_DATA_DIR=str(tmp_path / "data"),
            CELERY_BROKER_URL=amqp,
            CLEAVE_EVENT_QUEUE_PREFIX=prefix,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="200",
            CLEAVE_LOG_FORMAT="json",
            DJANGO_SETTINGS_MODULE="config.settings",
        )
        runner = Runner(env, tmp_path / "run_split.log", port, LAYOUT)
        try:
            runner.wait_ready()
            base = f"http://127.0.0.1:{port}"
            shop = requests.Session()
            email = f"t-{uuid.uuid4().hex[:8]}@example.com"
            shop.post(
                f"{base}/api/users/",
                json={"email": email, "password": "correct horse", "name": "T"},
                timeout=10,
            ).raise_for_status()
            token = shop.post(
                f"{base}/api/users/token",
                json={"email": email, "password": "correct horse"},
                timeout=10,
            ).json()["access"]
            shop.headers["Authorization"] = f"Bearer {token}"
            product = requests.get(f"{base}/api/catalog/products", timeout=10).json()["results"][0]
            shop.post(
                f"{base}/api/orders/cart/items",
                json={"product_id": product["id"], "quantity": 1},
                timeout=10,
            ).raise_for_status()

            # the client starts the trace: every span of the checkout belongs to it
            trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
            request_id = f"checkout-{uuid.uuid4().hex}"
            answer = shop.post(
                f"{base}/api/orders/checkout",
                json={"payment_method": "tok_visa"},
                headers={"traceparent": f"00-{trace_id}-{root}-01", "X-Request-ID": request_id},
                timeout=30,
            )
            answer.raise_for_status()
            order_id = answer.json()["order_id"]

            def confirmed():
                return (
                    shop.get(f"{base}/api/orders/{order_id}", timeout=10).json()["status"]
                    == "confirmed"
                )

            wait_until(confirmed, timeout=60, every=0.2, what="the order to be confirmed")

            def settled():
                # every group exported its part, every parent arrived (a busy
                # process exports a batch late), and nothing new comes
                spans = otlp.trace(trace_id)
                ids = {span.span_id for span in spans} | {root}
                time.sleep(1.0)
                return (
                    len(spans) > 0
                    and len(otlp.trace(trace_id)) == len(spans)
                    and {span.service for span in spans} >= GROUPS
                    and all(span.parent_span_id in ids for span in spans)
                )

            with contextlib.suppress(AssertionError):  # what is missing is asserted below
                wait_until(settled, timeout=90, every=0.5, what="the trace to arrive")
        finally:
            runner.stop()
            delete_queues(amqp, prefix)
        spans = otlp.trace(trace_id)

    by_service = {span.service for span in spans}
    assert by_service >= GROUPS, by_service
    clients = [span for span in spans if span.kind == CLIENT]
    assert {span.attributes.get("peer.service") for span in clients} >= {"users", "inventory"}
    servers = {span.service for span in spans if span.kind == SERVER}
    assert servers >= GROUPS, servers  # each group's web process continued the trace
    workers = [span for span in spans if span.kind == CONSUMER]
    assert workers, [span.name for span in spans]  # Celery workers ran sagas and handlers
    assert any(span.name.startswith("saga checkout") for span in spans)
    known = {span.span_id for span in spans} | {root}
    orphans = [(span.service, span.name) for span in spans if span.parent_span_id not in known]
    assert orphans == [], orphans

    logs = tmp_path / "data" / "split" / "logs"
    for process in (
        "orders-payments-notifications-analytics.web",
        "orders-payments-notifications-analytics.worker",
        "users-catalog.web",
        "inventory.web",
    ):
        lines = [
            json.loads(line[line.index("{") :])
            for line in (logs / f"{process}.log").read_text().splitlines()
            if request_id in line and "{" in line
        ]
        assert lines, f"no log line of {process} carries the request id"
        for line in lines:
            assert line["correlation_id"] == request_id
            assert line["service"] == process.rsplit(".", 1)[0]
        assert any(line["trace_id"] == trace_id and line["span_id"] for line in lines), process
    worker = (logs / "orders-payments-notifications-analytics.worker.log").read_text()
    assert f"Order {order_id} confirmed" in worker  # the happy path's facts, at INFO
