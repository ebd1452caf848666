"""
The admin site itself: it says Cleave, "View site" opens the API's
documentation, and every page writes times to the second with their zone.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cleave.admin.display import milliseconds, timestamp
from cleave.messaging.models import OutboxEvent
from cleave.testing import unit

pytestmark = unit

WHEN = datetime(2025, 1, 15, 12, 0, 5, 250000, tzinfo=UTC)


def test_the_admin_says_cleave_and_view_site_opens_the_api_docs(admin_client):
    body = admin_client.get("/admin/").content.decode()

    assert '<a href="/admin/">Cleave</a>' in body
    assert "<title>Cleave administration | Cleave admin</title>" in body
    assert '<a href="/api/docs/">View site</a>' in body


@pytest.mark.parametrize(
    ("zone", "shown"),
    [("UTC", "2025-01-15 12:00:05 UTC"), ("Europe/Paris", "2025-01-15 13:00:05 CET")],
)
def test_times_are_written_to_the_second_with_their_zone(admin_client, settings, zone, shown):
    settings.TIME_ZONE = zone
    event = OutboxEvent.objects.using("orders").create(
        type="order.placed", source="orders", data={}, occurred_at=WHEN
    )

    listed = admin_client.get("/admin/cleave/outboxevent/").content.decode()
    page = admin_client.get(f"/admin/cleave/outboxevent/{event.id}/change/").content.decode()

    assert shown in listed
    assert shown in page
    assert "Jan. 15, 2025" not in listed + page


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "-"), (0.0, "0 ms"), (0.2, "< 1 ms"), (2.1870000000000003, "2 ms"), (2.5, "3 ms")],
)
def test_durations_are_rounded_to_the_millisecond(value, shown):
    assert milliseconds(value) == shown


def test_a_timestamp_names_its_zone():
    assert timestamp(WHEN) == "2025-01-15 12:00:05 UTC"
    assert timestamp(None) == "-"
