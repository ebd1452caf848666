"""
Argument types for the operator commands (`manage.py sagas`, `events`, ...).

Each is an argparse `type=`: a bad value becomes argparse's own error, which
names the option and exits with status 2 (a `CommandError` under
`call_command`), instead of a traceback from deep inside the command.
`contexts()` reads a `--context` option once the command runs.
"""

from __future__ import annotations

import argparse
import math
import re
from datetime import UTC, datetime, timedelta

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from cleave.core.registry import ContextConfig, all_contexts

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def since(value: str) -> datetime:
    """
    A moment: `30m`, `2h`, `7d` (that long ago), or an ISO date or date-time
    (UTC unless it names its offset).
    """
    text = value.strip()
    match = _DURATION.match(text)
    try:
        if match:
            amount, unit = match.groups()
            return timezone.now() - timedelta(**{_UNITS[unit]: int(amount)})
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            if day is not None:
                moment = datetime(day.year, day.month, day.day)
    except (ValueError, OverflowError) as exc:  # 2025-13-01, 99999999999d
        raise argparse.ArgumentTypeError(f"{value!r} is out of range ({exc})") from None
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a duration (30m, 2h, 7d) or an ISO date (2025-01-31) or date-time"
        )
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def count(value: str) -> int:
    """A whole number of at least 1 (`--limit`)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: must be at least 1")
    return number


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number")
    return number


def seconds(value: str) -> float:
    """A duration in seconds, above zero (`--interval`)."""
    number = _number(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must be more than 0")
    return number


def at_least_zero(value: str) -> float:
    """A number of seconds, zero or more (`--grace`, `--timeout`)."""
    number = _number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must be 0 or more")
    return number


def days(value: str) -> timedelta:
    """
    A number of days, zero or more, that a date can reach back (`--older-than`
    of `events prune` and `sagas prune`).
    """
    number = at_least_zero(value)
    try:
        span = timedelta(days=number)
        timezone.now() - span
    except OverflowError:  # 1e12, or more days than lie between year 1 and now
        raise argparse.ArgumentTypeError(f"{value!r} days reach back before year 1") from None
    return span


def contexts(label: str | None = None) -> list[ContextConfig]:
    """The local context a `--context` option names, or every local one without it."""
    found = [cfg for cfg in all_contexts() if label in (None, cfg.label)]
    if label and not found:
        raise CommandError(f"No local context {label!r}.")
    return found
