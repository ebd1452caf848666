"""
Following a context's move (cleave.core.locations): the sealed URL, and a
process that reads a recorded location, drops its connections to where the
context was, and opens the next ones where it went.
"""

from __future__ import annotations

import sqlite3

import pytest
from cryptography.fernet import InvalidToken
from django.db import connections, transaction

from cleave.core import locations
from cleave.core.moves import ContextLocation

URL = "postgres://shop:s3cret-pw@db.internal:5432/payments"


def test_a_sealed_url_holds_no_password_and_opens_with_the_same_secret_only(settings):
    sealed = locations.seal(URL)
    assert "s3cret-pw" not in sealed and "db.internal" not in sealed
    assert locations.unseal(sealed) == URL
    settings.SECRET_KEY = "another secret entirely, long enough for Django's taste"
    with pytest.raises(InvalidToken):
        locations.unseal(sealed)


def test_a_rotated_secret_still_opens_what_the_old_one_sealed(settings):
    sealed = locations.seal(URL)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "the new secret after a rotation, long enough too"
    settings.SECRET_KEY_FALLBACKS = [old]
    assert locations.unseal(sealed) == URL


def test_a_shown_url_masks_the_password_only():
    assert locations.shown(URL) == "postgres://shop:***@db.internal:5432/payments"
    assert locations.shown("sqlite:////var/lib/x.sqlite3") == "sqlite:////var/lib/x.sqlite3"
    assert locations.shown("mysql://root@127.0.0.1/orders") == "mysql://root@127.0.0.1/orders"


@pytest.fixture
def following():
    """Following on for one test; the settings and state it changes put back after it."""
    if connections.settings["payments"]["ENGINE"] != "cleave.core.backends.sqlite3":
        # the mechanics do not depend on the vendor; a move of the suite's
        # server database would close its pool under the other tests
        pytest.skip("the suite's payments database is on a server (covered on SQLite)")
    saved = dict(connections.settings)
    locations.enable()
    yield
    locations.disable()
    for alias in list(locations._current):
        wrapper = getattr(connections._connections, alias, None)
        if wrapper is not None:
            locations._drop(wrapper)
        dict.__setitem__(connections.settings, alias, saved[alias])
    locations._current.clear()
    locations._applied.clear()


@pytest.mark.django_db(databases=["default", "payments"], transaction=True)
def test_a_process_follows_a_recorded_location_and_drops_its_old_connections(following, tmp_path):
    # the new location: an SQLite file holding a table the old one lacks
    moved = tmp_path / "moved.sqlite3"
    with sqlite3.connect(moved) as conn:
        conn.execute("CREATE TABLE here (x INTEGER)")
    old = connections["payments"]
    old.ensure_connection()
    ContextLocation.objects.create(
        label="payments",
        sealed_url=locations.seal(f"sqlite:///{moved}"),
        shown_url=f"sqlite:///{moved}",
        epoch=1,
        moved_at="2026-12-07T00:00:00Z",
        pause_seconds=0.1,
    )
    assert locations.follow(force=True) == ["payments"]
    assert locations.follow(force=True) == []  # followed once per epoch
    assert locations.stale(old)

    # inside a transaction the old connection is refused, not swapped
    with pytest.raises(locations.ContextMoved), transaction.atomic(using="payments"):
        pass
    assert getattr(connections._connections, "payments", None) is not old

    with connections["payments"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM here")
        assert cursor.fetchone() == (0,)
    assert connections["payments"].settings_dict["NAME"] == str(moved)


@pytest.mark.django_db(databases=["default", "payments"], transaction=True)
def test_a_request_drops_a_stale_connection_before_it_is_used(following, tmp_path):
    moved = tmp_path / "moved.sqlite3"
    sqlite3.connect(moved).close()
    old = connections["payments"]
    old.ensure_connection()
    locations._apply("payments", f"sqlite:///{moved}", 1)

    locations.drop_stale()  # what a request's start does (closed too, unless in memory)
    assert connections["payments"] is not old
    assert not locations.stale(connections["payments"])


@pytest.mark.django_db(databases=["default", "payments"])
def test_the_old_databases_refusal_becomes_context_moved():
    if connections["payments"].vendor != "sqlite":
        pytest.skip("an SQLite trigger; tests/integration/test_move.py meets the servers' own")
    with connections["payments"].cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE frozen (x INTEGER)")
        cursor.execute(
            "CREATE TEMP TRIGGER frozen_insert BEFORE INSERT ON frozen "
            f"BEGIN SELECT RAISE(ABORT, '{locations.MOVED}: payments'); END"
        )
        with pytest.raises(locations.ContextMoved):
            cursor.execute("INSERT INTO frozen VALUES (1)")


def test_without_a_table_nothing_is_recorded_and_nothing_followed(following):
    # the suite forbids database access here: `default` cannot say, so nothing moves
    assert locations.recorded() is None
    assert locations.follow(force=True) == []
