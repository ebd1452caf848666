"""
Every environment variable the platform reads, declared once: its name, type,
default, bounds, what it means and where the documentation lists it. A
context's own settings (the shop's: its currency, how long a reservation
holds, the payment provider, ...) are declared the same way by that context,
in `contexts/<label>/conf.py`; the platform knows no shop.

How a declaration is read:

- `install(globals(), package=..., labels=...)`, called once by
  config/settings.py, reads every declaration the platform and the contexts
  make as a Django setting of the same name (`settings.CLEAVE_RETRY_BASE`),
  so the settings module does not list them again. A split process installs
  every context's, not only those it serves: orders needs the currency.
- `value(name)` reads a declaration where it is used: those marked
  `installed=False`, whose value feeds a setting of another name
  (`DJANGO_DEBUG` becomes `DEBUG`, `CLEAVE_THROTTLE_ANON` a DRF rate), is
  derived (`CLEAVE_CONTEXTS`), or is read before settings exist; and the
  patterns (`<LABEL>_DATABASE_URL`), read with the label they stand for.

A bad value stops the process with one line naming the variable (the readers
are `cleave.core.env`). docs/configuration.md's tables are generated from
these declarations (`manage.py configuration`, checked by `make lint`), which
also finds a variable the code reads but nobody declared.

It is longer than a module of one job usually is because it is a table: one
declaration per variable, kept in one place on purpose so that every setting
of the platform is found by reading one file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from cleave.core import env

# The sections of docs/configuration.md the platform's variables are listed in;
# a context's settings are listed together, under "The shop".
SECTIONS = (
    "process",
    "secrets",
    "tokens",
    "throttling",
    "email",
    "deployment",
    "resilience",
    "databases",
    "events",
)
KINDS = (
    "bool",
    "int",
    "float",
    "str",
    "path",
    "list",
    "secret",
    "choice",
    "rate",
    "currency",
    "networks",
    "proxies",
    "header",
)
# In a pattern's name, `<LABEL>` (or `<CALLER>`) stands for a context's label in upper case.
_PLACEHOLDER = re.compile(r"<[A-Z]+>")


@dataclass(frozen=True)
class Extra:
    """A choice that needs an optional dependency, installed with `pip install -e '.[extra]'`."""

    choice: str
    extra: str
    module: str


@dataclass(frozen=True)
class Setting:
    """
    One environment variable. `kind` says how it is read (see `read()`);
    `default` is what unset or blank gives (for a `secret`, the file in the data
    directory where a generated value is kept, or "" for none; None for a
    number whose reader knows its default, as a pool's depends on the vendor
    of its alias: `POOL_DEFAULTS`); `minimum` bounds
    a number; `choices` the values of a `choice`. For the documentation:
    `doc` what it means, `section` the table it is in, `shown` its default in
    words when the value itself says too little (`<project>/var`).
    `installed=False`: read where it is used, with `value()`, not installed as
    a Django setting. `at_most` names another setting this one may not exceed;
    `needs` the optional dependencies a choice needs.
    """

    name: str
    kind: str
    default: Any = None
    minimum: float | None = 0
    choices: tuple[str, ...] = ()
    upper: bool = False
    doc: str = ""
    section: str = ""
    shown: str = ""
    installed: bool = True
    at_most: str = ""
    needs: tuple[Extra, ...] = ()

    @property
    def is_pattern(self) -> bool:
        return _PLACEHOLDER.search(self.name) is not None

    def variable(self, label: str | None = None) -> str:
        """The variable's name; for a pattern, the name for context `label`."""
        if not self.is_pattern:
            return self.name
        if not label:
            raise TypeError(f"{self.name} is a pattern: name the label it is read for")
        return _PLACEHOLDER.sub(label.upper(), self.name)

    def read(self, *, label: str | None = None, data_dir: Path | None = None) -> Any:
        """The value the environment gives, checked; the default when unset or blank."""
        name = self.variable(label)
        value = self._read(name, data_dir)
        for need in self.needs:
            if value == need.choice and find_spec(need.module) is None:
                raise ImproperlyConfigured(
                    f"{name}={value} needs the optional extra `{need.extra}` (the module "
                    f"{need.module!r} is not installed): pip install -e '.[{need.extra}]'"
                )
        return value

    def _read(self, name: str, data_dir: Path | None) -> Any:
        kind = self.kind
        if kind == "bool":
            return env.env_bool(name, default=self.default)
        if kind == "int":
            return env.env_int(name, default=self.default, minimum=self.minimum)
        if kind == "float":
            return env.env_float(name, default=self.default, minimum=self.minimum)
        if kind == "choice":
            return env.env_choice(
                name, default=self.default, choices=self.choices, upper=self.upper
            )
        if kind == "rate":
            return env.env_rate(name, default=self.default)
        if kind == "currency":
            return env.env_currency(name, default=self.default)
        if kind == "networks":
            return env.env_networks(name, default=self.default)
        if kind == "proxies":
            return env.env_proxies(name, default=self.default)
        if kind == "list":
            return env.env_list(name, default=self.default)
        if kind == "header":
            return env.proxy_ssl_header(name)
        if kind == "secret" and self.default:
            if data_dir is None:
                raise TypeError(f"{name} falls back to a file in the data directory: pass data_dir")
            return env.load_secret(name, Path(data_dir) / self.default)
        return env.env_str(name, default=self.default or "")


@dataclass(frozen=True)
class PoolDefaults:
    """What an alias's connection pool is when its `DB_POOL_*` variables are unset."""

    max: int
    min: int
    timeout: float  # seconds a thread waits for a free connection
    idle: float  # seconds a connection beyond `min` may stay idle before it is closed


# The connection pool of an alias on a server, by the server's vendor, the same
# for `default` and the contexts' aliases (why these numbers: cleave.core.databases).
# SQLite has none.
POOL_DEFAULTS = {
    "postgresql": PoolDefaults(max=3, min=1, timeout=3.0, idle=600.0),
    "mysql": PoolDefaults(max=15, min=3, timeout=30.0, idle=10.0),
}
_VENDOR_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}


def _pool_default(field: str) -> str:
    """A pool variable's default as docs/configuration.md shows it: one per vendor."""
    return ", ".join(
        f"`{getattr(defaults, field):g}` ({_VENDOR_NAMES[vendor]})"
        for vendor, defaults in POOL_DEFAULTS.items()
    )


SETTINGS: tuple[Setting, ...] = (
    # --- files and process ---------------------------------------------------------------
    Setting(
        "CLEAVE_DATA_DIR",
        "path",
        section="process",
        default="",
        shown="`<project>/var`",
        installed=False,
        doc=(
            "Where the process keeps its files: the SQLite databases (`<alias>.sqlite3`), "
            "generated secrets, `static/` (collected static files), `mail/` (the file-based "
            "email backend) and `metrics/`. Created if missing. Give every test run or instance "
            "its own."
        ),
    ),
    Setting(
        "DJANGO_SETTINGS_MODULE",
        "str",
        section="process",
        default="config.settings",
        installed=False,
        doc=(
            "Set by `manage.py`, WSGI, ASGI and Celery; change only to use another settings module."
        ),
    ),
    Setting(
        "CLEAVE_REQUIRE_SERVICES",
        "bool",
        section="process",
        default=False,
        installed=False,
        doc=(
            "Tests: a test that needs a server (PostgreSQL, MariaDB, Redis, RabbitMQ, nginx, "
            "promtool) fails instead of skipping when it is absent. `.ci/run` sets it."
        ),
    ),
    Setting(
        "DJANGO_DEBUG",
        "bool",
        section="process",
        default=False,
        installed=False,
        doc="Django's `DEBUG`. Never on in production: it shows tracebacks and settings.",
    ),
    Setting(
        "DJANGO_ALLOWED_HOSTS",
        "list",
        section="process",
        default="localhost,127.0.0.1,[::1],testserver",
        installed=False,
        doc="Host names the process answers for.",
    ),
    Setting(
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        "list",
        section="process",
        default="",
        installed=False,
        doc="Origins (`https://shop.example.com`) allowed to post to the admin through a proxy.",
    ),
    Setting(
        "CLEAVE_TRUSTED_PROXIES",
        "proxies",
        section="process",
        default="0",
        doc=(
            "The proxies whose `X-Forwarded-For` entries decide the client's address (throttles, "
            "sign-in limits, the admin's lockout, `/metrics`, the access log): a number of hops "
            "(`1`: the gateway, as `make run-split`, compose and Kubernetes set it) or their "
            "networks (`10.0.0.0/8,127.0.0.1/32`); `0`: none, the connection's peer is the "
            "client. See [operations.md](operations.md#client-addresses)."
        ),
    ),
    Setting(
        "DJANGO_SECURE_COOKIES",
        "bool",
        section="process",
        default=False,
        installed=False,
        doc="Mark session and CSRF cookies `Secure` (set it behind HTTPS).",
    ),
    Setting(
        "DJANGO_SECURE_HSTS_SECONDS",
        "int",
        section="process",
        default=0,
        installed=False,
        doc=(
            "Seconds browsers are told (`Strict-Transport-Security`) to use only HTTPS for this "
            "host; `0` sends no header. Start small (`3600`), then a year (`31536000`) once HTTPS "
            "works everywhere."
        ),
    ),
    Setting(
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "bool",
        section="process",
        default=False,
        installed=False,
        doc="Extend that rule to every subdomain (`includeSubDomains`).",
    ),
    Setting(
        "DJANGO_SECURE_HSTS_PRELOAD",
        "bool",
        section="process",
        default=False,
        installed=False,
        doc=(
            "Add `preload`, to ask browsers to ship the rule built in (hard to undo: see "
            "hstspreload.org first)."
        ),
    ),
    Setting(
        "DJANGO_SECURE_PROXY_SSL_HEADER",
        "header",
        section="process",
        default="",
        installed=False,
        doc=(
            "The header a TLS-terminating proxy sets to `https` (`X-Forwarded-Proto`): a request "
            "carrying `https` in it counts as secure. Set it only behind a proxy that always sets "
            "or strips that header, or a client could claim HTTPS."
        ),
    ),
    Setting(
        "DJANGO_SECURE_SSL_REDIRECT",
        "bool",
        section="process",
        default=False,
        installed=False,
        doc=(
            "Redirect every plain HTTP request to HTTPS, except `/health`, `/ready` and "
            "`/metrics` (probes and the scraper ask over HTTP inside the network). Only where "
            "every request comes through the TLS proxy: a split deployment's processes call each "
            "other over plain HTTP, so there the gateway or ingress redirects instead."
        ),
    ),
    # --- secrets (a generated value is kept in the data directory when unset) -------------
    Setting(
        "DJANGO_SECRET_KEY",
        "secret",
        section="secrets",
        default="secret_key",
        installed=False,
        doc="Django's signing key (sessions, CSRF, admin); at least 50 characters.",
    ),
    Setting(
        "CLEAVE_JWT_SECRET",
        "secret",
        section="secrets",
        default="jwt_secret",
        installed=False,
        doc="HS256 key of customer access and refresh tokens; at least 32 characters.",
    ),
    Setting(
        "CLEAVE_SERVICE_JWT_SECRET",
        "secret",
        section="secrets",
        default="service_secret",
        installed=False,
        doc="HS256 key of service tokens (`X-Service-Token`); at least 32 characters.",
    ),
    # --- tokens and sign-in -------------------------------------------------------------
    Setting(
        "CLEAVE_JWT_ISSUER",
        "str",
        section="tokens",
        default="cleave",
        doc="The `iss` of the tokens this deployment issues and accepts.",
    ),
    Setting(
        "CLEAVE_ADMIN_LOGIN_FAILURES",
        "int",
        section="tokens",
        default=5,
        minimum=1,
        installed=False,
        doc=(
            "Failed admin sign-ins for one account from one address, or from one address for "
            "any, before that address is locked out (of that account, or of all); never an "
            "account from everywhere (django-axes; `manage.py axes_reset` lifts every lock)."
        ),
    ),
    Setting(
        "CLEAVE_ADMIN_LOGIN_COOLOFF",
        "int",
        section="tokens",
        default=15 * 60,
        minimum=1,
        installed=False,
        doc="How long (seconds) a locked-out address waits (15 minutes).",
    ),
    Setting(
        "CLEAVE_ACCESS_TOKEN_TTL",
        "int",
        section="tokens",
        default=900,
        minimum=1,
        doc="Lifetime (seconds) of a customer's access token.",
    ),
    Setting(
        "CLEAVE_REFRESH_TOKEN_TTL",
        "int",
        section="tokens",
        default=14 * 24 * 3600,
        minimum=1,
        doc="Lifetime (seconds) of a customer's refresh token (14 days).",
    ),
    # --- API throttling -----------------------------------------------------------------
    Setting(
        "CLEAVE_THROTTLE_ANON",
        "rate",
        section="throttling",
        default="600/minute",
        installed=False,
        doc=(
            "Requests per `second`, `minute`, `hour` or `day` from one address without "
            "credentials; more get 429 problem details. The only rate anonymous clients get (the "
            "address is the client's, see [operations.md](operations.md#client-addresses))."
        ),
    ),
    Setting(
        "CLEAVE_THROTTLE_USER",
        "rate",
        section="throttling",
        default="1200/minute",
        installed=False,
        doc=(
            "The same per signed-in customer or operator. Service-to-service calls are not "
            "throttled. A rate that is not `<number>/<period>` stops the process at start-up."
        ),
    ),
    Setting(
        "CLEAVE_CACHE_URL",
        "str",
        section="throttling",
        default="",
        installed=False,
        doc=(
            "Where the throttles count and public catalogue reads are cached (up to the next "
            "write): unset, in each process's memory (so each gunicorn worker counts and caches "
            "on its own); `redis://127.0.0.1:6379/1` shares them between processes and machines."
        ),
    ),
    # --- email --------------------------------------------------------------------------
    Setting(
        "DJANGO_EMAIL_BACKEND",
        "str",
        section="email",
        default="django.core.mail.backends.filebased.EmailBackend",
        installed=False,
        doc=(
            "Django's `EMAIL_BACKEND`: by default every mail is written to a file in "
            "`<CLEAVE_DATA_DIR>/mail/`; `django.core.mail.backends.smtp.EmailBackend` sends "
            "them."
        ),
    ),
    Setting(
        "EMAIL_HOST",
        "str",
        section="email",
        default="localhost",
        doc="The SMTP server of the SMTP backend.",
    ),
    Setting(
        "EMAIL_PORT",
        "int",
        section="email",
        default=25,
        minimum=1,
        doc="Its port.",
    ),
    Setting(
        "DEFAULT_FROM_EMAIL",
        "str",
        section="email",
        default="shop@cleave.localhost",
        doc="The sender of the mails the shop sends (verification, order confirmation).",
    ),
    # --- contexts and deployment mode ------------------------------------------------------
    Setting(
        "CLEAVE_CONTEXTS",
        "str",
        section="deployment",
        default="",
        shown="every context",
        installed=False,
        doc=(
            "Comma-separated labels of the contexts this process serves (`orders,payments`): "
            "their apps, URLs, handlers, migrations and database aliases. The others are remote. "
            "An unknown label stops the process."
        ),
    ),
    Setting(
        "CLEAVE_SERVICE_NAME",
        "str",
        section="deployment",
        default="",
        shown="`cleave`, or the served contexts joined with `+`",
        installed=False,
        doc="This process's name in traces (`service.name`), metrics (`service` label) and logs.",
    ),
    Setting(
        "CLEAVE_MIGRATION_WAIT",
        "float",
        section="deployment",
        default=600.0,
        installed=False,
        doc=(
            "How long, in seconds, the image's `web`, `worker` and `relay` roles wait for their "
            "databases to be migrated before they start (`manage.py wait_for_migrations`); "
            "they exit with an error after it. `0` starts them without waiting."
        ),
    ),
    Setting(
        "CLEAVE_TRACING",
        "bool",
        section="deployment",
        default=True,
        installed=False,
        doc="`off` installs no OpenTelemetry tracer provider and no Django instrumentation.",
    ),
    Setting(
        "OTEL_TRACES_EXPORTER",
        "choice",
        section="deployment",
        default="none",
        choices=("none", "console", "otlp"),
        installed=False,
        doc=(
            "`console` prints spans, `otlp` exports them over OTLP/HTTP to "
            "`OTEL_EXPORTER_OTLP_ENDPOINT` (the standard `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` "
            "variables apply; see [observability.md](observability.md)). With `none`, spans keep "
            "their ids (in logs and event envelopes) but are not recorded, unless a caller's "
            "trace is sampled."
        ),
    ),
    Setting(
        "OTEL_TRACES_SAMPLER",
        "str",
        section="deployment",
        default="",
        shown="SDK default",
        installed=False,
        doc="The standard OpenTelemetry sampler variable; set, it is used whatever the exporter.",
    ),
    Setting(
        "CLEAVE_LOG_FORMAT",
        "choice",
        section="deployment",
        default="json",
        choices=("json", "plain"),
        installed=False,
        doc=(
            "`json`: one object per line with the service, context, request, correlation, "
            "causation, trace and span ids; `plain`: a line of text."
        ),
    ),
    Setting(
        "CLEAVE_LOG_LEVEL",
        "choice",
        section="deployment",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        upper=True,
        installed=False,
        doc="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`.",
    ),
    Setting(
        "CLEAVE_ENVIRONMENT",
        "str",
        section="deployment",
        default="",
        installed=False,
        doc="The traces' `deployment.environment` (`production`, `staging`).",
    ),
    Setting(
        "CLEAVE_METRICS_DIR",
        "path",
        section="deployment",
        default="",
        shown="`<CLEAVE_DATA_DIR>/metrics/<service>`",
        installed=False,
        doc=(
            "Where every process of one service writes its metric samples, so one scrape of "
            "`/metrics` sees them all (Prometheus multiprocess mode)."
        ),
    ),
    Setting(
        "CLEAVE_METRICS_ALLOW",
        "networks",
        section="deployment",
        default="127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
        doc="Networks `/metrics` answers (the scraper inside the network); others get a 404.",
    ),
    Setting(
        "CLEAVE_METRICS_TOKEN",
        "secret",
        section="deployment",
        default="",
        doc="Set, a request with `Authorization: Bearer <token>` may scrape from anywhere.",
    ),
    Setting(
        "CLEAVE_METRICS_PORT",
        "int",
        section="deployment",
        default=0,
        doc=(
            "A Celery worker or relay in a pod of its own serves its metrics on this port (`0`: "
            "off; the Kubernetes manifests use 9100)."
        ),
    ),
    Setting(
        "DJANGO_USE_X_FORWARDED_HOST",
        "bool",
        section="deployment",
        default=False,
        installed=False,
        doc=(
            "Build links with `X-Forwarded-Host` (behind a gateway that asks each service by its "
            "own name, as the Kubernetes manifests do)."
        ),
    ),
    Setting(
        "<LABEL>_SERVICE_URL",
        "str",
        section="deployment",
        default="",
        installed=False,
        doc=(
            "Base URL of a context's API, e.g. `INVENTORY_SERVICE_URL=http://inventory`, or "
            "several comma-separated (calls go round-robin over those that answer; see "
            "[discovery.md](discovery.md)). Set, the service client calls that context over HTTP "
            "even if it is local; unset for a remote context, `http://<label>` (Kubernetes DNS: "
            "the context's Service on port 80) is used."
        ),
    ),
    Setting(
        "<CALLER>_SERVICE_TOKEN",
        "str",
        section="deployment",
        default="",
        installed=False,
        doc=(
            "A fixed service token for calls made by context `<CALLER>` (e.g. "
            "`ORDERS_SERVICE_TOKEN`). Unset, the client mints a short-lived token carrying the "
            "caller's grants."
        ),
    ),
    Setting(
        "CLEAVE_SERVICE_TIMEOUT",
        "float",
        section="deployment",
        default=5,
        minimum=0.001,
        doc=(
            "Seconds a service call may take in all, its retries included (the budget; see "
            "[resilience.md](resilience.md))."
        ),
    ),
    Setting(
        "CLEAVE_SERVICE_TOKEN_TTL",
        "int",
        section="deployment",
        default=300,
        minimum=1,
        at_most="CLEAVE_SERVICE_TOKEN_MAX_TTL",
        doc=(
            "Lifetime (seconds) of the service tokens the client mints; a token is reused while "
            "more than a quarter of it is left."
        ),
    ),
    Setting(
        "CLEAVE_SERVICE_TOKEN_MAX_TTL",
        "int",
        section="deployment",
        default=3600,
        minimum=1,
        doc=(
            "The longest lifetime (seconds, `exp - iat`) of a service token every process "
            "accepts, whoever signed it, and the default and most `manage.py issue_service_token "
            "--ttl` issues. `CLEAVE_SERVICE_TOKEN_TTL` above it stops the process at start-up."
        ),
    ),
    # --- resilience: calls across the wire ---------------------------------------------------
    Setting(
        "CLEAVE_BREAKER_CALL_TIMEOUT",
        "float",
        section="resilience",
        default=3,
        minimum=0.001,
        doc=(
            "Seconds one attempt of a service call may take (at most what is left of "
            "`CLEAVE_SERVICE_TIMEOUT`)."
        ),
    ),
    Setting(
        "CLEAVE_RETRY_ATTEMPTS",
        "int",
        section="resilience",
        default=3,
        minimum=1,
        doc=(
            "Attempts of an idempotent call (a GET, or a call with `Idempotency-Key`, which the "
            "client adds to every mutating call) that meets a technical failure."
        ),
    ),
    Setting(
        "CLEAVE_RETRY_BASE",
        "float",
        section="resilience",
        default=0.1,
        minimum=0.001,
        doc=(
            "Seconds: before the n-th retry the client waits a random time between 0 and `base x "
            "2^(n-1)`, at most `max` (the one backoff: uniform in [d/2, d]), if the budget still "
            "holds another attempt."
        ),
    ),
    Setting(
        "CLEAVE_RETRY_MAX",
        "float",
        section="resilience",
        default=1,
        minimum=0.001,
        doc=(
            "Seconds: before the n-th retry the client waits a random time between 0 and `base x "
            "2^(n-1)`, at most `max` (the one backoff: uniform in [d/2, d]), if the budget still "
            "holds another attempt."
        ),
    ),
    Setting(
        "CLEAVE_BREAKER_ERROR_THRESHOLD",
        "int",
        section="resilience",
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
        section="resilience",
        default=5,
        minimum=1,
        doc="Calls the window must hold before the circuit may open.",
    ),
    Setting(
        "CLEAVE_BREAKER_WINDOW_CALLS",
        "int",
        section="resilience",
        default=10,
        minimum=1,
        doc="The window: the last N calls, none older than this many seconds.",
    ),
    Setting(
        "CLEAVE_BREAKER_WINDOW_SECONDS",
        "float",
        section="resilience",
        default=60,
        minimum=1,
        doc="The window: the last N calls, none older than this many seconds.",
    ),
    Setting(
        "CLEAVE_BREAKER_RESET_TIMEOUT",
        "float",
        section="resilience",
        default=30,
        minimum=0.001,
        doc="Seconds an open circuit refuses calls before one trial call goes through.",
    ),
    Setting(
        "CLEAVE_DISCOVERY",
        "choice",
        section="resilience",
        default="env",
        choices=("env", "consul"),
        needs=(Extra("consul", extra="consul", module="consul"),),
        doc=(
            "`env`: `<LABEL>_SERVICE_URL`, else Kubernetes DNS; `consul`: passing instances from "
            "Consul (needs the optional extra: `pip install -e '.[consul]'`)."
        ),
    ),
    Setting(
        "CONSUL_HTTP_ADDR",
        "str",
        section="resilience",
        default="http://127.0.0.1:8500",
        doc="The Consul agent, `host:port` or `http(s)://host:port`.",
    ),
    Setting(
        "CLEAVE_CONSUL_CACHE_SECONDS",
        "float",
        section="resilience",
        default=5,
        doc="How long a context's instance list from Consul is reused.",
    ),
    Setting(
        "CLEAVE_ADVERTISE_URL",
        "str",
        section="resilience",
        default="",
        doc=(
            "Base URL this web process registers in Consul; unset, gunicorn's first bind (the "
            "host name for `0.0.0.0`/`[::]`). It must be in `DJANGO_ALLOWED_HOSTS`."
        ),
    ),
    Setting(
        "CLEAVE_DISCOVERY_PROBE_INTERVAL",
        "float",
        section="resilience",
        default=2,
        minimum=0.01,
        doc=(
            "Seconds between `/ready` probes of an instance that refused a connection or did not "
            "answer."
        ),
    ),
    Setting(
        "CLEAVE_SAGA_WAIT_BASE",
        "float",
        section="resilience",
        default=0.5,
        minimum=0.001,
        doc=(
            "Seconds a saga step or compensation waits after its n-th technical failure in a row:"
            " `base x 2^(n-1)`, at most `max`, half of it random jitter (the one backoff)."
        ),
    ),
    Setting(
        "CLEAVE_SAGA_WAIT_MAX",
        "float",
        section="resilience",
        default=30,
        minimum=0.001,
        doc=(
            "Seconds a saga step or compensation waits after its n-th technical failure in a row:"
            " `base x 2^(n-1)`, at most `max`, half of it random jitter (the one backoff)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_UNAVAILABLE_WINDOW",
        "float",
        section="resilience",
        default=3600,
        doc=(
            "A handler that fails for a technical reason keeps being retried past "
            "`CLEAVE_EVENT_MAX_ATTEMPTS` while its event is younger than this many seconds; then "
            "it is dead-lettered."
        ),
    ),
    # --- databases (cleave.core.databases) -------------------------------------------------
    Setting(
        "DATABASE_URL",
        "str",
        section="databases",
        default="",
        shown="`sqlite:///<CLEAVE_DATA_DIR>/default.sqlite3`",
        installed=False,
        doc="The `default` alias (operators, admin log, sessions).",
    ),
    Setting(
        "<LABEL>_DATABASE_URL",
        "str",
        section="databases",
        default="",
        shown="`sqlite:///<CLEAVE_DATA_DIR>/<label>.sqlite3`",
        installed=False,
        doc="A context's alias: `ORDERS_DATABASE_URL=mysql://…` for `orders`.",
    ),
    Setting(
        "CLEAVE_DB_CONN_MAX_AGE",
        "int",
        section="databases",
        default=60,
        installed=False,
        doc=(
            "Seconds a connection without a pool (SQLite, or a server alias whose pool is off) "
            "is kept between requests; `0` closes it at the end of every request."
        ),
    ),
    Setting(
        "DB_POOL_MAX",
        "int",
        section="databases",
        shown=_pool_default("max"),
        installed=False,
        doc=(
            "The most connections each process opens to the `default` alias on PostgreSQL or "
            "MySQL/MariaDB, whatever its number of threads. `0` turns the pool off: one "
            "persistent connection per thread."
        ),
    ),
    Setting(
        "DB_POOL_MIN",
        "int",
        section="databases",
        shown=_pool_default("min"),
        installed=False,
        doc=(
            "Connections the `default` alias's pool keeps open while idle (at most `DB_POOL_MAX`)."
        ),
    ),
    Setting(
        "DB_POOL_TIMEOUT",
        "float",
        section="databases",
        shown=_pool_default("timeout"),
        minimum=0.001,
        installed=False,
        doc=(
            "Seconds a thread waits for a free connection of the pool; then the request answers "
            "503 problem details and a saga step or handler waits and tries again (see "
            "[resilience.md](resilience.md))."
        ),
    ),
    Setting(
        "DB_POOL_IDLE",
        "float",
        section="databases",
        shown=_pool_default("idle"),
        minimum=0.1,
        installed=False,
        doc=(
            "Seconds a connection beyond `DB_POOL_MIN` may stay idle in the pool; then it is "
            "closed."
        ),
    ),
    Setting(
        "<LABEL>_DB_POOL_MAX",
        "int",
        section="databases",
        shown=_pool_default("max"),
        installed=False,
        doc="`DB_POOL_MAX` for a context's alias: `ORDERS_DB_POOL_MAX=5`.",
    ),
    Setting(
        "<LABEL>_DB_POOL_MIN",
        "int",
        section="databases",
        shown=_pool_default("min"),
        installed=False,
        doc="`DB_POOL_MIN` for a context's alias: `ORDERS_DB_POOL_MIN=2`.",
    ),
    Setting(
        "<LABEL>_DB_POOL_TIMEOUT",
        "float",
        section="databases",
        shown=_pool_default("timeout"),
        minimum=0.001,
        installed=False,
        doc="`DB_POOL_TIMEOUT` for a context's alias: `ORDERS_DB_POOL_TIMEOUT=5`.",
    ),
    Setting(
        "<LABEL>_DB_POOL_IDLE",
        "float",
        section="databases",
        shown=_pool_default("idle"),
        minimum=0.1,
        installed=False,
        doc="`DB_POOL_IDLE` for a context's alias: `ORDERS_DB_POOL_IDLE=60`.",
    ),
    # --- events and sagas ------------------------------------------------------------------
    Setting(
        "CLEAVE_EVENT_TRANSPORT",
        "choice",
        section="events",
        default="inprocess",
        choices=("inprocess", "celery"),
        doc=(
            "How committed outbox rows reach subscribers: `inprocess` (right after commit, in "
            "this process) or `celery` (published to the broker, consumed by Celery workers, one "
            "queue per context). Anything else stops the process at start-up. See "
            "[events.md](events.md)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_MAX_ATTEMPTS",
        "int",
        section="events",
        default=5,
        minimum=1,
        doc=(
            "Attempts of a failing handler (both transports) before the event is dead-lettered "
            "for that handler."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_MESSAGE_EVENTS",
        "int",
        section="events",
        default=50,
        minimum=1,
        doc=(
            "At most this many consecutive events of one type, committed close together, travel "
            "in one task message (`1`: one message per event)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_CONFIRM_TIMEOUT",
        "float",
        section="events",
        default=10,
        minimum=0.001,
        doc=(
            "Seconds the relay waits for RabbitMQ's publisher confirms before leaving the rows "
            "pending for the next sweep."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_RETRY_BASE",
        "float",
        section="events",
        default=1,
        doc=(
            "Seconds: the n-th retry waits `base x 2^(n-1)` (half of it random jitter), at most "
            "`max`."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_RETRY_MAX",
        "float",
        section="events",
        default=300,
        doc=(
            "Seconds: the n-th retry waits `base x 2^(n-1)` (half of it random jitter), at most "
            "`max`."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_RELAY_GRACE",
        "float",
        section="events",
        default=2,
        doc=(
            "The relay sweep takes pending rows older than the grace period, every interval "
            "seconds (`events relay`, the worker-side loop)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_RELAY_INTERVAL",
        "float",
        section="events",
        default=2,
        minimum=0.001,
        doc=(
            "The relay sweep takes pending rows older than the grace period, every interval "
            "seconds (`events relay`, the worker-side loop)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_RELAY_IN_WORKER",
        "bool",
        section="events",
        default=False,
        doc=(
            "Run the relay sweep in a thread of every Celery worker (instead of `events relay` or"
            " beat)."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_REDELIVER_AFTER",
        "float",
        section="events",
        default=30,
        doc="A Celery retry overdue by this many seconds was lost; the sweep sends it again.",
    ),
    Setting(
        "CLEAVE_EVENT_REDIS_REPUBLISH_WINDOW",
        "float",
        section="events",
        default=3600,
        doc=(
            "After a Redis restart (new `run_id`), events the old server accepted this many "
            "seconds back are published again."
        ),
    ),
    Setting(
        "CLEAVE_EVENT_QUEUE_PREFIX",
        "str",
        section="events",
        default="",
        doc=(
            "Prepended to every exchange and queue name, so several installations (or test runs) "
            "share one broker."
        ),
    ),
    Setting(
        "CELERY_BROKER_URL",
        "str",
        section="events",
        default="amqp://guest:guest@127.0.0.1:5672//",
        doc=(
            "The broker of the Celery transport and workers (RabbitMQ, or "
            "`redis://127.0.0.1:6379/0`). `/ready` checks it when the transport is not "
            "`inprocess`."
        ),
    ),
    Setting(
        "CLEAVE_REDIS_VISIBILITY_TIMEOUT",
        "int",
        section="events",
        default=3600,
        minimum=1,
        installed=False,
        doc=(
            "Redis broker: seconds before a message a worker took and never acknowledged returns "
            "to its queue, and between checks for such messages."
        ),
    ),
    Setting(
        "CLEAVE_REDIS_RESTORE_INTERVAL",
        "int",
        section="events",
        default=10,
        minimum=1,
        installed=False,
        doc=(
            "Redis broker: seconds before a message a worker took and never acknowledged returns "
            "to its queue, and between checks for such messages."
        ),
    ),
    Setting(
        "CLEAVE_REDIS_RESTORE_LOCK",
        "int",
        section="events",
        default=30,
        minimum=1,
        installed=False,
        doc=(
            "Redis broker: seconds the lock for returning such messages lasts if the worker "
            "holding it dies (kombu's own default is 300: that long, no worker would return "
            "anything)."
        ),
    ),
    Setting(
        "CELERY_BROKER_CONNECTION_TIMEOUT",
        "float",
        section="events",
        default=3,
        minimum=0.001,
        doc="Seconds to connect to the broker.",
    ),
    Setting(
        "CELERY_DB_REUSE_MAX",
        "int",
        section="events",
        default=100,
        installed=False,
        doc=(
            "Workers keep database connections across tasks (closing them every 2xN tasks); `0` "
            "closes them around every task."
        ),
    ),
    Setting(
        "CLEAVE_SAGA_LEASE_SECONDS",
        "int",
        section="events",
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
        section="events",
        default=0.05,
        doc=(
            "Base of the exponential backoff (seconds, with jitter) between the in-place retries "
            "of a saga step or compensation that raised an unexpected error (a bug, not a "
            "technical failure: those wait, see `CLEAVE_SAGA_WAIT_BASE`). `0` retries at once "
            "(tests)."
        ),
    ),
    Setting(
        "CLEAVE_SAGA_RUNNER",
        "choice",
        section="events",
        default="",
        choices=("inprocess", "celery"),
        shown="follows the transport",
        doc=(
            "`inprocess` drives a saga in the process that started it; `celery` sends the task "
            "`cleave.sagas.run` to the owning context's queue. Unset: `celery` when "
            "`CLEAVE_EVENT_TRANSPORT=celery`, else `inprocess`."
        ),
    ),
    Setting(
        "CLEAVE_EMBEDDED_SCHEDULER",
        "bool",
        section="events",
        default=True,
        installed=False,
        doc=(
            "Each web process (config/wsgi.py) runs the periodic jobs — relay sweep, saga "
            "recovery, reservation expiry — in a thread. Turn it `off` where Celery beat or "
            "`manage.py periodic` runs them."
        ),
    ),
)

# Every declaration this process knows, by name: the platform's, and each
# context's once `install()` has read it.
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


def value(name: str, *, label: str | None = None, data_dir: Path | None = None) -> Any:
    """
    Read the declared variable `name` from the environment; for a pattern, the
    variable of context `label`; for a secret kept in a file when unset, that
    file in `data_dir`.
    """
    return BY_NAME[name].read(label=label, data_dir=data_dir)


def context_settings(package: str, label: str) -> tuple[Setting, ...]:
    """The settings context `label` declares in `<package>.<label>.conf`; () without one."""
    name = f"{package}.{label}.conf"
    try:
        module = import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return ()
        raise
    return tuple(module.SETTINGS)


def declarations(*, package: str, labels: Iterable[str]) -> dict[str, tuple[Setting, ...]]:
    """
    Every declaration by its owner: `"cleave"` (the platform's) first, then each
    context's label in the order given. A name declared twice is refused.
    """
    found = {"cleave": SETTINGS, **{label: context_settings(package, label) for label in labels}}
    owners: dict[str, str] = {}
    for owner, settings in found.items():
        for setting in settings:
            if setting.name in owners:
                raise ImproperlyConfigured(
                    f"{setting.name} is declared twice: by {owners[setting.name]} and by {owner}"
                )
            owners[setting.name] = owner
    return found


def install(namespace: dict[str, Any], *, package: str, labels: Iterable[str]) -> dict[str, Any]:
    """
    Read every installed declaration, the platform's and those of the contexts
    `labels` (each found by name as `<package>.<label>.conf`), and set each in
    `namespace` under its own name: called by the settings module with its
    `globals()`. The contexts' declarations join `BY_NAME`. Returns what it set.
    """
    every = [
        setting
        for settings in declarations(package=package, labels=labels).values()
        for setting in settings
    ]
    installed = [setting for setting in every if setting.installed and not setting.is_pattern]
    for setting in every:
        BY_NAME.setdefault(setting.name, setting)
    values = {setting.name: setting.read() for setting in installed}
    for setting in installed:
        if setting.at_most and values[setting.name] > values[setting.at_most]:
            raise ImproperlyConfigured(
                f"{setting.name} ({values[setting.name]}) must be at most {setting.at_most} "
                f"({values[setting.at_most]})"
            )
    namespace.update(values)
    return values
