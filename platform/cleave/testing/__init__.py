"""
Test helpers for projects built on cleave (pytest + pytest-django).

- `flows`: a `django_db` mark for tests whose events must really be delivered:
  real transactions on every alias, so `on_commit` fires and handlers run.
- `service_headers(...)`: headers carrying a service token.
- `customer_headers(...)`: headers carrying a customer access token.
- `published(...)`: the outbox rows of a context, optionally of one type.
- `require_server(...)`: skip (or fail, under CLEAVE_REQUIRE_SERVICES=1) when a
  server a test needs is not reachable.
- `SagaScenario` (and the `saga_scenario` fixture, imported into a conftest):
  saga tests written as given / when / then, with fake steps; `saga_steps`
  changes a step of a registered saga for one test.
"""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid as uuid_module
from typing import Any
from uuid import UUID

import pytest
from django.db import transaction

from cleave import sagas
from cleave.auth.tokens import SERVICE_TOKEN_HEADER, issue_customer_tokens, issue_service_token
from cleave.core import conf
from cleave.core.registry import alias_for
from cleave.messaging.models import OutboxEvent
from cleave.sagas import OutcomeUnknown, StepFailed, start
from cleave.sagas.controls import compensate, request_cancel
from cleave.sagas.definition import register, unregister
from cleave.sagas.driver import run
from cleave.sagas.models import SagaInstance, SagaStepLog

flows = pytest.mark.django_db(transaction=True, databases="__all__")
"""Real transactions on every alias: events are delivered as in production."""

unit = pytest.mark.django_db(databases="__all__")
"""Each test in a rolled-back transaction per alias: fast, but no event delivery."""


def service_headers(*permissions: str, service: str = "tests") -> dict[str, str]:
    """Headers for APIClient: `api.get(url, headers=service_headers("analytics:read"))`."""
    return {SERVICE_TOKEN_HEADER: issue_service_token(service, list(permissions))}


def customer_headers(customer_id: UUID | str, email: str = "") -> dict[str, str]:
    token = issue_customer_tokens(customer_id, email=email)["access"]
    return {"Authorization": f"Bearer {token}"}


def published(context: str, type_name: str | None = None) -> list[Any]:
    """The envelopes a context published, oldest first."""
    rows = OutboxEvent.objects.using(alias_for(context)).order_by("occurred_at", "id")
    if type_name:
        rows = rows.filter(type=type_name)
    return [row.envelope() for row in rows]


def services_required() -> bool:
    return conf.value("CLEAVE_REQUIRE_SERVICES")


def require_server(name: str, host: str, port: int) -> None:
    """Skip the test unless `host:port` accepts connections (fail in CI instead)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc})"
        if services_required():
            pytest.fail(f"CLEAVE_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)


# --- sagas: given / when / then -------------------------------------------------------------


class SagaScenario:
    """
    Write a saga test as given / when / then, against a real definition.

        scenario = SagaScenario("checkout")
        scenario.given_data(order_id=..., customer_id=...)           # the saga's input
        scenario.given_step("process_payment", fails="payment_declined")
        scenario.when_started()                                       # runs it
        scenario.then_state("compensated").then_reason("payment_declined")
        scenario.then_compensated(["reserve_inventory", "place_order"])

    `given_step` replaces one step's action (or, with `compensation=True`, its
    compensation) with a fake for this scenario only; the other steps run for
    real. The scenario registers a copy of the definition under its own name
    and forgets it on `close()` (or at the end of a `with` block).
    """

    def __init__(self, name: str) -> None:
        self._engine = sagas
        self._replace = dataclasses.replace
        self.base = sagas.get_definition(name)
        self.name = f"{name}[scenario-{uuid_module.uuid4().hex[:8]}]"
        self.definition = sagas.register(self._replace(self.base, name=self.name))
        self.alias = alias_for(self.base.context)
        self.data: dict[str, Any] = {}
        self.calls: list[tuple[str, str]] = []
        self.instance = None

    # given --------------------------------------------------------------------------

    def given_data(self, **data: Any) -> SagaScenario:
        self.data.update(data)
        return self

    def given_definition(self, **changes: Any) -> SagaScenario:
        """Change the copy's options, e.g. `deadline=timedelta(0)`."""
        self.definition = register(self._replace(self.definition, **changes))
        return self

    def given_step(
        self,
        step: str,
        *,
        returns: dict[str, Any] | None = None,
        fails: str | None = None,
        raises: BaseException | type[BaseException] | None = None,
        unknown: str | None = None,
        hangs: float | None = None,
        compensation: bool = False,
        **options: Any,
    ) -> SagaScenario:
        """
        Fake one step's action (or compensation): it returns `returns`, refuses
        with `fails`, raises `raises`, reports an unknown outcome `unknown`, or
        sleeps `hangs` seconds first. `options` change the step itself
        (`timeout=0.1`, `retries=0`, `query=...`).
        """
        kind = "compensation" if compensation else "action"

        def fake(ctx):
            self.calls.append((step, kind))
            if hangs:
                time.sleep(hangs)
            if fails:
                raise StepFailed(fails, f"{step} refused (scenario)")
            if unknown:
                raise OutcomeUnknown(unknown, f"{step}: outcome unknown (scenario)")
            if raises is not None:
                raise raises
            return dict(returns or {})

        fake.__name__ = f"fake_{step}_{kind}"
        index = self.definition.step_index(step)
        steps = list(self.definition.steps)
        steps[index] = self._replace(steps[index], **{kind: fake}, **options)
        return self.given_definition(steps=tuple(steps))

    # when ---------------------------------------------------------------------------

    def when_started(self, **data: Any):
        """Start the saga (it runs as configured, in-process by default) and reload it."""
        with transaction.atomic(using=self.alias):
            self.instance = start(self.name, data={**self.data, **data})
        return self.reload()

    def when_resumed(self):
        run(self.alias, self.instance.id)
        return self.reload()

    def when_cancel_requested(self, reason: str):
        with transaction.atomic(using=self.alias):
            request_cancel(self.alias, self.instance.id, reason)
        return self.reload()

    def when_compensated(self, reason: str | None = None):
        compensate(self.alias, self.instance.id, reason)
        return self.reload()

    def reload(self):
        self.instance = SagaInstance.objects.using(self.alias).get(pk=self.instance.id)
        return self.instance

    # then ---------------------------------------------------------------------------

    def timeline(self) -> list[tuple[str, str, str]]:
        """(step, kind, status) of every logged attempt, in order."""
        rows = SagaStepLog.objects.using(self.alias).filter(saga_id=self.instance.id)
        return [(log.step, log.kind, log.status) for log in rows.order_by("id")]

    def then_state(self, state: str) -> SagaScenario:
        self.reload()
        assert self.instance.state == state, (
            f"saga is {self.instance.state}, expected {state}; timeline: {self.timeline()}"
        )
        return self

    def then_reason(self, reason: str) -> SagaScenario:
        assert self.instance.failure_reason == reason, (
            f"reason is {self.instance.failure_reason!r}, expected {reason!r}"
        )
        return self

    def then_timeline(self, expected: list[tuple[str, str, str]]) -> SagaScenario:
        assert self.timeline() == expected, f"timeline: {self.timeline()}"
        return self

    def then_completed_steps(self, expected: list[str]) -> SagaScenario:
        done = [
            s for s, kind, status in self.timeline() if kind == "action" and status == "succeeded"
        ]
        assert done == expected, f"completed actions: {done}"
        return self

    def then_compensated(self, expected: list[str]) -> SagaScenario:
        """The steps whose compensation succeeded, in the order they ran."""
        done = [
            s
            for s, kind, status in self.timeline()
            if kind == "compensation" and status == "succeeded"
        ]
        assert done == expected, f"compensated: {done}"
        return self

    def then_data(self, **expected: Any) -> SagaScenario:
        for key, value in expected.items():
            assert self.instance.data.get(key) == value, (
                f"data[{key!r}] is {self.instance.data.get(key)!r}, expected {value!r}"
            )
        return self

    # clean-up -----------------------------------------------------------------------

    def close(self) -> None:
        unregister(self.name)

    def __enter__(self) -> SagaScenario:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture
def saga_steps():
    """
    `saga_steps("checkout", "process_payment", timeout=0.2)`: the registered
    saga runs with that step changed (its action, compensation, timeout,
    retries) until the test ends, for tests that drive the real saga through
    the API rather than a `SagaScenario` copy.
    """
    originals: dict[str, sagas.SagaDefinition] = {}

    def replace(name: str, step: str, **changes: Any) -> sagas.SagaDefinition:
        current = sagas.get_definition(name)
        originals.setdefault(name, current)
        steps = list(current.steps)
        index = current.step_index(step)
        steps[index] = dataclasses.replace(steps[index], **changes)
        return sagas.register(dataclasses.replace(current, steps=tuple(steps)))

    yield replace
    for definition in originals.values():
        sagas.register(definition)


@pytest.fixture
def saga_scenario():
    """`saga_scenario("checkout")` → a SagaScenario, forgotten after the test."""
    made: list[SagaScenario] = []

    def make(name: str) -> SagaScenario:
        made.append(SagaScenario(name))
        return made[-1]

    yield make
    for scenario in made:
        scenario.close()
