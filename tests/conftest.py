"""Fixtures shared by every test."""

import pytest
from django.core import mail
from rest_framework.test import APIClient

from cleave.core import locations

# The suite's databases are its own, whatever a developer's `default` records
# of moved contexts (tests of moves enable following themselves).
locations.disable()


@pytest.fixture(autouse=True)
def _no_throttling(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "100000/minute", "user": "100000/minute"},
    }


@pytest.fixture(autouse=True)
def _fresh_circuits():
    """Every test starts with closed circuits and no ejected instance."""
    from cleave.calls.client import reset_resilience

    reset_resilience()
    yield
    reset_resilience()


@pytest.fixture(autouse=True)
def _empty_cache():
    """
    Every test starts with an empty cache: its databases are rolled back after
    it, and with them the catalogue's revision, under which reads are cached.
    """
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def outbox_mail():
    """Django's locmem mailbox, emptied for the test."""
    mail.outbox = []
    return mail.outbox
