"""
After the customer story on a gunicorn server started the plain way
(`gunicorn config.wsgi --workers 2`), one scrape of /metrics sees every
worker process: the seed's HTTP metrics with the counts of both workers, the
saga, event and breaker metrics, and no label that grows with the traffic.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.test_customer_story import _mail_subjects
from tests.integration.conftest import make_live
from tests.support.story import customer_story

ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels_text, value = line[len(name) + 1 :].rsplit("} ", 1)
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels_text))
        found.append((labels, float(value)))
    return found


@pytest.mark.services
def test_one_scrape_counts_the_requests_of_every_worker(tmp_path, migrated_template, live_secrets):
    manager, live = make_live(tmp_path, "inprocess", migrated_template, live_secrets)
    try:
        live.env["CLEAVE_LOG_FORMAT"] = "json"
        live.manage("seed_demo")
        web = live.start_web(workers=2)
        base = live.web_url

        # the customer story: sagas (approved and declined), events, service calls
        customer_story(
            base,
            seed=lambda: None,  # seeded above, before the server started
            mail_subjects=lambda: _mail_subjects(live.data_dir / "mail"),
            create_operator=live.create_operator,
        )

        # short connections, several at once, until both workers have taken some
        # (which worker accepts a connection is the kernel's choice)
        sent = 0

        def served_by() -> Counter:
            found = Counter()
            for line in web.output().splitlines():
                if '"name": "cleave.access"' in line and "/api/catalog/categories" in line:
                    found[json.loads(line)["process"]] += 1
            return found

        def get(_):
            return requests.get(f"{base}/api/catalog/categories", timeout=10).status_code

        with ThreadPoolExecutor(max_workers=6) as pool:
            while sent < 600 and (sent < 60 or len(served_by()) < 2):
                assert set(pool.map(get, range(30))) == {200}
                sent += 30
        assert sum(served_by().values()) == sent
        assert len(served_by()) == 2, served_by()  # both workers served some

        text = requests.get(f"{base}/metrics", timeout=10).text
    finally:
        manager.__exit__(None, None, None)

    categories = [
        value
        for labels, value in samples(text, "http_requests_total")
        if labels["route"] == "/api/catalog/categories" and labels["status_code"] == "200"
    ]
    assert categories == [float(sent)]  # one scrape, both workers' counts
    routes = {labels["route"] for labels, _ in samples(text, "http_requests_total")}
    assert all(route.startswith("/") or route == "unmatched" for route in routes)
    assert not any(ID.search(route) for route in routes), routes
    assert '_bucket{le="0.005",method="GET",route="/api/catalog/categories"' in text
    finished = samples(text, "cleave_saga_finished_total")
    assert [value for labels, value in finished if labels["state"] == "completed"] == [1.0]
    assert [
        value
        for labels, value in finished
        if labels["state"] == "compensated" and labels["reason"] == "payment_declined"
    ] == [1.0]
    published = {labels["type"] for labels, _ in samples(text, "cleave_events_published_total")}
    assert {"user.created", "order.placed", "order.confirmed"} <= published
    delivered = samples(text, "cleave_events_delivered_total")
    assert any(labels["outcome"] == "applied" for labels, _ in delivered)
    assert samples(text, "service_call_duration_seconds_count")
    breakers = samples(text, "circuit_breaker_state")
    assert ({"service": "orders", "target_service": "inventory"}, 0.0) in breakers
