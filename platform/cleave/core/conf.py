"""
Every `CLEAVE_*` setting, declared once: its name, type, default, minimum or
choices, and what it means.

config/settings.py reads each through `value()`; docs/configuration.md
documents each, and tests/platform/core/test_conf.py fails when the three drift
apart (a variable read in the code but not declared, a declared one missing
from the documentation, a documented default that is not the declared one).
The readers themselves (`cleave.env`) turn a bad value into a one-line error
naming the variable.

It is longer than a module of one job usually is (about 600 lines) because
it is a table: one declaration per setting, kept in one place on purpose so
that every setting is found by reading one file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cleave.core import env


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # bool int float str path secret choice rate currency networks proxies
    default: Any = None
    minimum: float | None = 0
    choices: tuple[str, ...] = ()
    upper: bool = False
    doc: str = ""

    def read(self) -> Any:
        """The value the environment gives, checked; the default when unset or blank."""
        if self.kind == "bool":
            return env.env_bool(self.name, default=self.default)
        if self.kind == "int":
            return env.env_int(self.name, default=self.default, minimum=self.minimum)
        if self.kind == "float":
            return env.env_float(self.name, default=self.default, minimum=self.minimum)
        if self.kind == "choice":
            return env.env_choice(
                self.name, default=self.default, choices=self.choices, upper=self.upper
            )
        if self.kind == "rate":
            return env.env_rate(self.name, default=self.default)
        if self.kind == "currency":
            return env.env_currency(self.name, default=self.default)
        if self.kind == "networks":
            return env.env_networks(self.name, default=self.default)
        if self.kind == "proxies":
            return env.env_proxies(self.name, default=self.default)
        return env.env_str(self.name, default=self.default)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "CLEAVE_METRICS_ALLOW",
        "networks",
        default="127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
        doc="Networks `/metrics` answers (the scraper inside the network); others get a 404.",
    ),
    Setting(
        "CLEAVE_METRICS_PORT",
        "int",
        default=0,
        doc="A worker or relay in a pod of its own serves its metrics on this port (0: off).",
    ),
    Setting(
        "CLEAVE_CURRENCY",
        "currency",
        default="EUR",
        doc="The shop's currency (ISO 4217), used for every price and payment.",
    ),
    Setting(
        "CLEAVE_RESERVATION_TTL",
        "int",
        default=900,
        minimum=1,
        doc="Seconds an inventory reservation is held before the expiry job releases it.",
    ),
    Setting(
        "CLEAVE_THROTTLE_ANON",
        "rate",
        default="600/minute",
        doc=(
            "Requests per `second`, `minute`, `hour` or `day` from one address without "
            "credentials; more get 429 problem details."
        ),
    ),
    Setting(
        "CLEAVE_THROTTLE_USER",
        "rate",
        default="1200/minute",
        doc="The same per signed-in customer or operator.",
    ),
    Setting(
        "CLEAVE_TRUSTED_PROXIES",
        "proxies",
        default="0",
        doc=(
            "The proxies whose `X-Forwarded-For` entries decide the client's address: a number "
            "of hops (`1`: the gateway) or their networks (`10.0.0.0/8`); `0`: none, the "
            "connection's peer is the client (see [operations.md](operations.md#client-addresses))."
        ),
    ),
    Setting(
        "CLEAVE_THROTTLE_VERIFY_RESEND",
        "rate",
        default="3/hour",
        doc=(
            "Verification mails one customer may ask for again (`POST /api/users/verify/resend`);"
            " more get 429 problem details."
        ),
    ),
    Setting(
        "CLEAVE_ADMIN_LOGIN_FAILURES",
        "int",
        default=5,
        minimum=1,
        doc=(
            "Failed admin sign-ins for one account from one address, or from one address for "
            "any, before that address is locked out (of that account, or of all)."
        ),
    ),
    Setting(
        "CLEAVE_ADMIN_LOGIN_COOLOFF",
        "int",
        default=15 * 60,
        minimum=1,
        doc="How long (seconds) a locked-out address waits.",
    ),
    Setting(
        "CLEAVE_SIGNIN_FAILURES",
        "int",
        default=5,
        minimum=1,
        doc=(
            "Failed customer sign-ins for one account from one address in a window; past them "
            "that account is refused from that address (429) until the window ends."
        ),
    ),
    Setting(
        "CLEAVE_SIGNIN_ADDRESS_FAILURES",
        "int",
        default=20,
        minimum=1,
        doc=(
            "Failures from one address in a window (sign-ins for any account, refused refresh "
            "tokens, registrations of an address that exists, wrong passwords confirming a "
            "change); past them the address is refused (429) until the window ends."
        ),
    ),
    Setting(
        "CLEAVE_SIGNIN_WINDOW",
        "int",
        default=300,
        minimum=1,
        doc="Seconds a window of the customers' sign-in limits lasts.",
    ),
    Setting(
        "CLEAVE_ACCESS_TOKEN_TTL",
        "int",
        default=900,
        minimum=1,
        doc="Lifetime (seconds) of a customer's access token.",
    ),
    Setting(
        "CLEAVE_REFRESH_TOKEN_TTL",
        "int",
        default=14 * 24 * 3600,
        minimum=1,
        doc="Lifetime (seconds) of a customer's refresh token.",
    ),
    Setting(
        "CLEAVE_EMAIL_VERIFY_MAX_AGE",
        "int",
        default=3 * 24 * 3600,
        minimum=60,
        doc="How long (seconds) the token mailed to verify a customer's email address is valid.",
    ),
    Setting(
        "CLEAVE_SERVICE_TOKEN_TTL",
        "int",
        default=300,
        minimum=1,
        doc=(
            "Lifetime (seconds) of the service tokens the client mints; a token is reused while "
            "more than a quarter of it is left."
        ),
    ),
    Setting(
        "CLEAVE_SERVICE_TOKEN_MAX_TTL",
        "int",
        default=3600,
        minimum=1,
        doc=(
            "The longest lifetime (seconds, `exp - iat`) of a service token this deployment "
            "accepts, and that `manage.py issue_service_token --ttl` issues; at least "
            "`CLEAVE_SERVICE_TOKEN_TTL`."
        ),
    ),
    Setting(
        "CLEAVE_SERVICE_TIMEOUT",
        "float",
        default=5,
        minimum=0.001,
        doc=(
            "Seconds a service call may take in all, its retries included (the budget; see "
            "[resilience.md](resilience.md))."
        ),
    ),
    Setting(
        "CLEAVE_BREAKER_CALL_TIMEOUT",
        "float",
        default=3,
        minimum=0.001,
        doc=(
            "Seconds one attempt of a service call may take (at most what is left of "
            "`CLEAVE_SERVICE_TIMEOUT`)."
        ),
    ),
    Setting(
        "CLEAVE_RETRY_BASE",
        "float",
        default=0.1,
        minimum=0.001,
        doc=(
            "Seconds: before the n-th retry the client waits a random time between 0 and `base x "
            "2^(n-1)`, at most `max` (full jitter), if the budget still holds another attempt."
        ),
    ),
    Setting(
        "CLEAVE_RETRY_MAX",
        "float",
        default=1,
        minimum=0.001,
        doc=(
            "Seconds: before the n-th retry the client waits a random time between 0 and `base x "
            "2^(n-1)`, at most `max` (full jitter), if the budget still holds another attempt."
        ),
    ),
    Setting(
        "CLEAVE_RETRY_ATTEMPTS",
        "int",
        default=3,
        minimum=1,
        doc=(
            "Attempts of an idempotent call (a GET, or a call with `Idempotency-Key`, which the "
            "client adds to every mutating call) that meets a technical failure."
        ),
    ),
    Setting(
        "CLEAVE_BREAKER_ERROR_THRESHOLD",
        "int",
        default=50,
        minimum=1,
        doc=(
            "Percent of technical failures among the recent calls to one target at which its "
            "circuit opens."
        ),
    ),
    Setting(
        "CLEAVE_BREAKER_MIN_CALLS",
        "int",
        default=5,
        minimum=1,
        doc="Calls the window must hold before the circuit may open.",
    ),
    Setting(
        "CLEAVE_BREAKER_WINDOW_CALLS",
        "int",
        default=10,
        minimum=1,
        doc="The window: the last N calls, none older than this many seconds.",
    ),
    Setting(
        "CLEAVE_BREAKER_WINDOW_SECONDS",
        "float",
        default=60,
        minimum=1,
        doc="The window: the last N calls, none older than this many seconds.",
    ),
    Setting(
        "CLEAVE_BREAKER_RESET_TIMEOUT",
        "float",
        default=30,
        minimum=0.001,
        doc="Seconds an open circuit refuses calls before one trial call goes through.",
    ),
    Setting(
        "CLEAVE_DISCOVERY",
        "choice",
        default="env",
        choices=("env", "consul"),
        doc=(
            "`env`: `<LABEL>_SERVICE_URL`, else Kubernetes DNS; `consul`: passing instances from "
            "Consul."
        ),
    ),
    Setting(
        "CLEAVE_CONSUL_CACHE_SECONDS",
        "float",
        default=5,
        doc="How long a context's instance list from Consul is reused.",
    ),
    Setting(
        "CLEAVE_DISCOVERY_PROBE_INTERVAL",
        "float",
        default=2,
        minimum=0.01,
        doc=(
            "Seconds between `/ready` probes of an instance that refused a connection or did not "
            "answer."
        ),
    ),
    Setting(
        "CLEAVE_SAGA_LEASE_SECONDS",
        "int",
        default=30,
        minimum=1,
        doc=(
            "How long a process holds a running saga before another may resume it (`manage.py "
            "sagas resume`)."
        ),
    ),
    Setting(
        "CLEAVE_SAGA_RETRY_BASE",
        "float",
        default=0.05,
        doc=(
            "Base of the exponential backoff (seconds, with jitter) between the in-place retries "
            "of a saga step or compensation that raised an unexpected error (a bug, not a "
            "technical failure: those wait, see `CLEAVE_SAGA_WAIT_BASE`)."
        ),
    ),
    Setting(
        "CLEAVE_SAGA_WAIT_BASE",
        "float",
        default=0.5,
        minimum=0.001,
        doc=(
            "Seconds a saga step or compensation waits after its n-th technical failure in a row:"
            " `base x 2^(n-1)`, at most `max`, less up to a quarter of jitter."
        ),
    ),
    Setting(
        "CLEAVE_SAGA_WAIT_MAX",
        "float",
        default=30,
        minimum=0.001,
        doc=(
            "Seconds a saga step or compensation waits after its n-th technical failure in a row:"
            " `base x 2^(n-1)`, at most `max`, less up to a quarter of jitter."
        ),
    ),
    Setting(
        "CLEAVE_CHECKOUT_DEADLINE",
        "int",
        default=300,
        minimum=1,
        doc=(
            "Seconds a checkout may take; past it the saga compensates and the order is cancelled"
            " (`service_unavailable` when a context was unavailable, else `timeout`)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_MAX_ATTEMPTS",
        "int",
        default=5,
        minimum=1,
        doc=(
            "Attempts of a failing handler (both transports) before the event is dead-lettered "
            "for that handler."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_UNAVAILABLE_WINDOW",
        "float",
        default=3600,
        doc=(
            "A handler that fails for a technical reason keeps being retried past "
            "`CLEAVE_EVENT_MAX_ATTEMPTS` while its event is younger than this many seconds; then "
            "it is dead-lettered."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_RETRY_BASE",
        "float",
        default=1,
        doc=(
            "Seconds: the n-th retry waits `base x 2^(n-1)` (half of it random jitter), at most "
            "`max`."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_RETRY_MAX",
        "float",
        default=300,
        doc=(
            "Seconds: the n-th retry waits `base x 2^(n-1)` (half of it random jitter), at most "
            "`max`."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_RELAY_GRACE",
        "float",
        default=2,
        doc=(
            "The relay sweep takes pending rows older than the grace period, every interval "
            "seconds (`events relay`, the worker-side loop)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_RELAY_INTERVAL",
        "float",
        default=2,
        minimum=0.001,
        doc=(
            "The relay sweep takes pending rows older than the grace period, every interval "
            "seconds (`events relay`, the worker-side loop)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_MESSAGE_EVENTS",
        "int",
        default=50,
        minimum=1,
        doc="At most this many consecutive events of one type travel in one task message.",
    ),
    Setting(
        "CLEAVE_EVENT_CONFIRM_TIMEOUT",
        "float",
        default=10,
        minimum=0.001,
        doc="Seconds the relay waits for RabbitMQ's confirms before leaving the rows pending.",
    ),
    Setting(
        "CLEAVE_EVENT_RELAY_IN_WORKER",
        "bool",
        default=False,
        doc=(
            "Run the relay sweep in a thread of every Celery worker (instead of `events relay` or"
            " beat)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_REDELIVER_AFTER",
        "float",
        default=30,
        doc="A Celery retry overdue by this many seconds was lost; the sweep sends it again.",
    ),
    Setting(
        "CLEAVE_EVENT_REDIS_REPUBLISH_WINDOW",
        "float",
        default=3600,
        doc=(
            "After a Redis restart (new `run_id`), events the old server accepted this many "
            "seconds back are published again."
        ),
    ),
    Setting(
        "CLEAVE_REDIS_VISIBILITY_TIMEOUT",
        "int",
        default=3600,
        minimum=1,
        doc=(
            "Redis broker: seconds before a message a worker took and never acknowledged returns "
            "to its queue, and between checks for such messages."
        ),
    ),
    Setting(
        "CLEAVE_REDIS_RESTORE_INTERVAL",
        "int",
        default=10,
        minimum=1,
        doc=(
            "Redis broker: seconds before a message a worker took and never acknowledged returns "
            "to its queue, and between checks for such messages."
        ),
    ),
    Setting(
        "CLEAVE_REDIS_RESTORE_LOCK",
        "int",
        default=30,
        minimum=1,
        doc=(
            "Redis broker: seconds the lock for returning such messages lasts if the worker "
            "holding it dies (kombu's own default is 300: that long, no worker would return "
            "anything)."
        ),
    ),
    Setting(
        "CLEAVE_SAGA_RUNNER",
        "choice",
        default="",
        choices=("inprocess", "celery"),
        doc=(
            "`inprocess` drives a saga in the process that started it; `celery` sends the task "
            "`cleave.sagas.run` to the owning context's queue."
        ),
    ),
    Setting(
        "CLEAVE_LOG_LEVEL",
        "choice",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        upper=True,
        doc="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`.",
    ),
    Setting(
        "CLEAVE_LOG_FORMAT",
        "choice",
        default="json",
        choices=("json", "plain"),
        doc=(
            "`json`: one object per line with the service, context, request, correlation, "
            "causation, trace and span ids; `plain`: a line of text."
        ),
    ),
    Setting(
        "CLEAVE_DATA_DIR",
        "path",
        default="",
        doc=(
            "Where the process keeps its files: the SQLite databases (`<alias>.sqlite3`), "
            "generated secrets, `static/` (collected static files) and `mail/` (the file-based "
            "email backend)."
        ),
    ),
    Setting(
        "CLEAVE_CONTEXTS",
        "str",
        default="",
        doc=(
            "Comma-separated labels of the contexts this process serves (`orders,payments`): "
            "their apps, URLs, handlers, migrations and database aliases."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_TRANSPORT",
        "choice",
        default="inprocess",
        choices=("inprocess", "celery"),
        doc=(
            "How committed outbox rows reach subscribers: `inprocess` (right after commit, in "
            "this process) or `celery` (published to the broker, consumed by Celery workers, one "
            "queue per context)."
        ),
    ),
    Setting(
        "CLEAVE_SERVICE_NAME",
        "str",
        default="",
        doc="This process's name in traces (`service.name`), metrics (`service` label) and logs.",
    ),
    Setting(
        "CLEAVE_METRICS_DIR",
        "path",
        default="",
        doc=(
            "Where every process of one service writes its metric samples, so one scrape of "
            "`/metrics` sees them all (Prometheus multiprocess mode)."
        ),
    ),
    Setting(
        "CLEAVE_METRICS_TOKEN",
        "secret",
        default="",
        doc="Set, a request with `Authorization: Bearer <token>` may scrape from anywhere.",
    ),
    Setting(
        "CLEAVE_PAYMENT_PROVIDER",
        "str",
        default="contexts.payments.providers.FakeProvider",
        doc=(
            "Dotted path of the payment provider class (the built-in fake honours the test tokens)."
        ),
    ),
    Setting(
        "CLEAVE_CACHE_URL",
        "str",
        default="",
        doc=(
            "Where the throttles count: unset, in each process's memory (so each gunicorn worker "
            "counts on its own); `redis://127.0.0.1:6379/1` shares the counts between processes "
            "and machines."
        ),
    ),
    Setting(
        "CLEAVE_JWT_SECRET",
        "secret",
        default="",
        doc="HS256 key of customer access and refresh tokens.",
    ),
    Setting(
        "CLEAVE_SERVICE_JWT_SECRET",
        "secret",
        default="",
        doc="HS256 key of service tokens (`X-Service-Token`).",
    ),
    Setting(
        "CLEAVE_JWT_ISSUER",
        "str",
        default="cleave",
        doc="The `iss` of the tokens this deployment issues and accepts.",
    ),
    Setting(
        "CLEAVE_ADVERTISE_URL",
        "str",
        default="",
        doc=(
            "Base URL this web process registers in Consul; unset, gunicorn's first bind (the "
            "host name for `0.0.0.0`/`[::]`)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_QUEUE_PREFIX",
        "str",
        default="",
        doc=(
            "Prepended to every exchange and queue name, so several installations (or test runs) "
            "share one broker."
        ),
    ),
    Setting(
        "CLEAVE_TRACING",
        "bool",
        default=True,
        doc="`off` installs no OpenTelemetry tracer provider and no Django instrumentation.",
    ),
    Setting(
        "CLEAVE_ENVIRONMENT",
        "str",
        default="",
        doc="The traces' `deployment.environment` (`production`, `staging`).",
    ),
    Setting(
        "CLEAVE_DB_CONN_MAX_AGE",
        "int",
        default=60,
        doc=(
            "Seconds a connection without a pool (SQLite, MySQL/MariaDB, PostgreSQL with its pool"
            " off) is kept between requests; `0` closes it at the end of every request."
        ),
    ),
    Setting(
        "CLEAVE_EMBEDDED_SCHEDULER",
        "bool",
        default=True,
        doc=(
            "Each web process (config/wsgi.py) runs the periodic jobs — relay sweep, saga "
            "recovery, reservation expiry — in a thread."
        ),
    ),
    Setting(
        "CLEAVE_REQUIRE_SERVICES",
        "bool",
        default=False,
        doc="Tests that need a server fail instead of skipping when it is absent (CI sets it).",
    ),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}


def value(name: str) -> Any:
    """Read the declared setting `name` from the environment."""
    return BY_NAME[name].read()
