"""
django-prometheus's database and cache metrics, counted by its backends in
every process of a service, reach one scrape of /metrics: a `manage.py`
command and both workers of a gunicorn server, per alias.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.conftest import make_live
from tests.integration.test_metrics_gunicorn import samples


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for found, value in samples(text, name)
        if all(found.get(key) == wanted for key, wanted in labels.items())
    )


@pytest.mark.services
def test_one_scrape_counts_the_queries_of_every_process_per_alias(
    tmp_path, migrated_template, live_secrets
):
    manager, live = make_live(tmp_path, "inprocess", migrated_template, live_secrets)
    try:
        live.env["CLEAVE_LOG_FORMAT"] = "json"
        live.manage("seed_demo")  # a process of its own, before the server
        web = live.start_web(workers=2)
        base = live.web_url
        before = requests.get(f"{base}/metrics", timeout=10).text

        def served_by() -> Counter:
            found = Counter()
            for line in web.output().splitlines():
                if '"name": "cleave.access"' in line and "/api/catalog/categories" in line:
                    found[json.loads(line)["process"]] += 1
            return found

        def get(_):
            return requests.get(f"{base}/api/catalog/categories", timeout=10).status_code

        sent = 0
        with ThreadPoolExecutor(max_workers=6) as pool:
            while sent < 600 and (sent < 60 or len(served_by()) < 2):
                assert set(pool.map(get, range(30))) == {200}
                sent += 30
        assert len(served_by()) == 2, served_by()  # both workers served some

        text = requests.get(f"{base}/metrics", timeout=10).text
    finally:
        manager.__exit__(None, None, None)

    # every request read the catalog alias at least once, in whichever worker served it
    catalog = total(text, "django_db_execute_total", alias="catalog", vendor="sqlite")
    assert catalog - total(before, "django_db_execute_total", alias="catalog") >= sent
    assert total(text, "django_db_query_duration_seconds_count", alias="catalog") >= catalog
    # a connection to the alias in each worker (kept across requests) and in seed_demo
    assert total(text, "django_db_new_connections_total", alias="catalog") >= 3
    assert total(text, "django_db_errors_total") == 0
    # the anonymous throttle asked the local-memory cache once per request
    assert total(text, "django_cache_get_total", backend="locmem") >= sent
