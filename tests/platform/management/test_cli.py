"""The operator commands refuse bad option values with argparse's error, never a traceback."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from cleave.management import arguments as cli


def test_since_reads_durations_ago_and_iso_dates_in_utc():
    before = timezone.now()
    moment = cli.since("2h")
    after = timezone.now()
    assert before - timedelta(hours=2) <= moment <= after - timedelta(hours=2)
    assert cli.since(" 30m ") <= timezone.now() - timedelta(minutes=30)
    assert cli.since("2025-01-31") == datetime(2025, 1, 31, tzinfo=UTC)
    assert cli.since("2025-01-31T10:00:00+02:00") == datetime(2025, 1, 31, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", "'yesterday' is not a duration (30m, 2h, 7d) or an ISO date"),
        ("2025-13-01", "'2025-13-01' is out of range (month must be in 1..12)"),
        ("2025-02-30", "'2025-02-30' is out of range (day is out of range for month)"),
        ("99999999999d", "'99999999999d' is out of range"),
        ("5w", "'5w' is not a duration"),
    ],
)
def test_since_refuses_what_is_not_a_moment(value, message):
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        cli.since(value)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (cli.count, "0", "'0': must be at least 1"),
        (cli.count, "-1", "'-1': must be at least 1"),
        (cli.count, "ten", "'ten' is not a whole number"),
        (cli.seconds, "0", "'0': must be more than 0"),
        (cli.seconds, "inf", "'inf' is not a finite number"),
        (cli.at_least_zero, "-0.5", "'-0.5': must be 0 or more"),
        (cli.at_least_zero, "nan", "'nan' is not a finite number"),
        (cli.at_least_zero, "soon", "'soon' is not a number"),
    ],
)
def test_numbers_are_checked(kind, value, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        kind(value)


def test_numbers_in_range_pass():
    assert cli.count("3") == 3
    assert cli.seconds("0.5") == 0.5
    assert cli.at_least_zero("0") == 0.0
    assert cli.days("1.5") == timedelta(days=1, hours=12)


@pytest.mark.parametrize(
    ("command", "arguments", "message"),
    [
        ("events", ["dead", "--limit", "-1"], "argument --limit: '-1': must be at least 1"),
        ("events", ["list", "--since", "2025-13-01"], "argument --since: '2025-13-01' is out"),
        ("events", ["relay", "--interval", "0"], "argument --interval: '0': must be more than 0"),
        ("events", ["prune", "--older-than", "-3"], "argument --older-than: '-3': must be 0"),
        ("events", ["prune", "--older-than", "1e12"], "argument --older-than: '1e12' days reach"),
        ("sagas", ["prune", "--older-than", "-3"], "argument --older-than: '-3': must be 0"),
        ("sagas", ["prune", "--older-than", "soon"], "argument --older-than: 'soon' is not a"),
        ("sagas", ["prune", "--older-than", "800000"], "argument --older-than: '800000' days"),
        ("sagas", ["prune"], "the following arguments are required: --older-than"),
        ("sagas", ["list", "--since", "2025-02-30"], "argument --since: '2025-02-30' is out"),
        ("sagas", ["list", "--limit", "0"], "argument --limit: '0': must be at least 1"),
        ("release_expired_reservations", ["--limit", "0"], "argument --limit: '0': must be"),
        ("wait_for_migrations", ["--timeout", "-1"], "argument --timeout: '-1': must be 0"),
        ("wait_for_migrations", ["--interval", "0"], "argument --interval: '0': must be more"),
    ],
)
def test_commands_report_a_bad_option_as_a_command_error(command, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command(command, *arguments, stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db(databases="__all__")
def test_wait_for_migrations_returns_at_once_on_migrated_databases():
    out = StringIO()
    call_command("wait_for_migrations", "--timeout", "5", stdout=out)
    assert out.getvalue().startswith("Migrated: default, ")


def test_wait_for_migrations_refuses_an_alias_this_process_does_not_serve():
    with pytest.raises(CommandError, match="not a database alias of this process: nowhere"):
        call_command("wait_for_migrations", "--database", "nowhere", stdout=StringIO())


def test_wait_for_migrations_zero_does_not_wait(monkeypatch):
    monkeypatch.setenv("CLEAVE_MIGRATION_WAIT", "0")
    out = StringIO()
    call_command("wait_for_migrations", "--database", "nowhere", stdout=out)
    assert "Not waiting for migrations" in out.getvalue()
