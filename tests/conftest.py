"""Fixtures shared by every test."""

import pytest
from django.core import mail
from rest_framework.test import APIClient


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


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def outbox_mail():
    """Django's locmem mailbox, emptied for the test."""
    mail.outbox = []
    return mail.outbox
