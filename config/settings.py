"""
Settings for the Cleave project.

Everything that differs between machines comes from the environment, with
defaults that run the whole system on embedded SQLite files and an in-process
event bus. See docs/configuration.md for every variable.
"""

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from cleave.core import conf
from cleave.core.databases import database_settings
from cleave.core.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    load_secret,
    proxy_ssl_header,
    require_strong_secrets,
)
from cleave.core.registry import local_context_names

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(conf.value("CLEAVE_DATA_DIR") or BASE_DIR / "var").resolve()
# made private when it is made (it holds the SQLite files and generated secrets);
# a directory the operator chose is left as it is
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = load_secret("DJANGO_SECRET_KEY", DATA_DIR / "secret_key")
CLEAVE_JWT_SECRET = load_secret("CLEAVE_JWT_SECRET", DATA_DIR / "jwt_secret")
CLEAVE_SERVICE_JWT_SECRET = load_secret("CLEAVE_SERVICE_JWT_SECRET", DATA_DIR / "service_secret")
if not DEBUG:
    # Every process but a developer's DEBUG one: a short key can be guessed, and
    # one value for two secrets makes a leak of either a leak of both.
    require_strong_secrets(
        {
            "DJANGO_SECRET_KEY": (SECRET_KEY, 50),
            "CLEAVE_JWT_SECRET": (CLEAVE_JWT_SECRET, 32),
            "CLEAVE_SERVICE_JWT_SECRET": (CLEAVE_SERVICE_JWT_SECRET, 32),
        }
    )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", default="localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", default="")
# Behind a gateway that asks each service by its own name (a mesh routes by Host) and
# passes the client's host in X-Forwarded-Host: links are built with the client's.
USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST", default=False)
# The proxies whose X-Forwarded-For entries are believed (cleave.proxies): none by
# default, so the connection's peer is the client; `1` behind the gateway.
CLEAVE_TRUSTED_PROXIES = conf.value("CLEAVE_TRUSTED_PROXIES")
# The namespace the Kubernetes manifests are generated for (manage.py deploy render).
CLEAVE_K8S_NAMESPACE = "cleave"

# --- bounded contexts -------------------------------------------------------
# Every context this code base knows, in dependency-free order. CLEAVE_CONTEXTS
# narrows the set a process serves (split deployment); the rest are remote.
CLEAVE_ALL_CONTEXTS = [
    "users",
    "catalog",
    "inventory",
    "orders",
    "payments",
    "notifications",
    "analytics",
]
CLEAVE_CONTEXT_PACKAGE = "contexts"
# each context's published contract is `<CLEAVE_CONTRACTS_PACKAGE>.<label>` (docs/architecture.md)
CLEAVE_CONTRACTS_PACKAGE = "contracts"
CLEAVE_CONTEXTS = local_context_names(CLEAVE_ALL_CONTEXTS, conf.value("CLEAVE_CONTEXTS"))
CLEAVE_EVENT_TRANSPORT = conf.value("CLEAVE_EVENT_TRANSPORT")
# This process's name in traces, metrics and logs: the contexts it serves when narrowed.
CLEAVE_SERVICE_NAME = conf.value("CLEAVE_SERVICE_NAME") or (
    "cleave" if CLEAVE_CONTEXTS == CLEAVE_ALL_CONTEXTS else "+".join(CLEAVE_CONTEXTS)
)

# --- metrics (cleave.metrics) -----------------------------------------------------------
# Every process of one service writes its samples here (prometheus_client's
# multiprocess mode), so one scrape of any web process sees them all. It must be
# set before prometheus_client is imported: settings are read first.
CLEAVE_METRICS_DIR = Path(
    conf.value("CLEAVE_METRICS_DIR") or DATA_DIR / "metrics" / CLEAVE_SERVICE_NAME
).resolve()
CLEAVE_METRICS_DIR.mkdir(parents=True, exist_ok=True)
# (always this service's own: a child process with another data dir or service
# name must not inherit its parent's directory)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(CLEAVE_METRICS_DIR)
# /metrics answers these networks (loopback and private: the scraper inside the
# cluster), or a request with `Authorization: Bearer <CLEAVE_METRICS_TOKEN>`.
CLEAVE_METRICS_ALLOW = conf.value("CLEAVE_METRICS_ALLOW")
CLEAVE_METRICS_TOKEN = conf.value("CLEAVE_METRICS_TOKEN")
# A worker or relay whose pod has no web process serves its metrics on this port (0: off).
CLEAVE_METRICS_PORT = conf.value("CLEAVE_METRICS_PORT")
CLEAVE_CURRENCY = conf.value("CLEAVE_CURRENCY")
CLEAVE_RESERVATION_TTL = conf.value("CLEAVE_RESERVATION_TTL")
CLEAVE_PAYMENT_PROVIDER = conf.value("CLEAVE_PAYMENT_PROVIDER")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files, served from here: no CDN, a version pinned in pyproject.toml
    "drf_spectacular_sidecar",
    # the admin's sign-in throttle (its attempts are kept in the default alias)
    "axes",
    "cleave",
    "cleave_tools",
    *[f"{CLEAVE_CONTEXT_PACKAGE}.{name}" for name in CLEAVE_CONTEXTS],
]

MIDDLEWARE = [
    "cleave.runtime.probes.ProbeMiddleware",
    "cleave.observability.logs.RequestContextMiddleware",
    # inside the request's flow, so the access line carries its ids
    "cleave.observability.metrics.HttpMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "cleave.http.problems.DatabaseUnavailableMiddleware",
    # last, as django-axes asks: answers a locked-out sign-in
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- databases ----------------------------------------------------------------
# `default` holds Django's own tables (operators, admin log, sessions); each
# context has an alias named after its label. See cleave.contexts.
DATABASES = database_settings(CLEAVE_CONTEXTS, data_dir=DATA_DIR)
DATABASE_ROUTERS = ["cleave.core.router.ContextRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Operators (Django auth) get a strong hasher; customers use the same list.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- email ------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = DATA_DIR / "mail"
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", default=25, minimum=1)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "shop@cleave.localhost")

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cleave.auth.authentication.CustomerAuthentication",
        "cleave.auth.authentication.ServiceTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["cleave.http.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "cleave.http.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "cleave.http.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "cleave.http.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "cleave.http.throttles.AnonThrottle",
        "cleave.http.throttles.CustomerThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": conf.value("CLEAVE_THROTTLE_ANON"),
        "user": conf.value("CLEAVE_THROTTLE_USER"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cleave API",
    "DESCRIPTION": "E-commerce backend: users, catalog, inventory, orders, payments, "
    "notifications and analytics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # a split process's document includes the other groups' operations
        "cleave.http.openapi.include_remote_contexts",
    ],
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "cleave",
    }
}
if conf.value("CLEAVE_CACHE_URL"):
    CACHES["default"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": conf.value("CLEAVE_CACHE_URL"),
    }

# --- security -------------------------------------------------------------------
# (CLEAVE_JWT_SECRET and CLEAVE_SERVICE_JWT_SECRET are read and checked at the top)
CLEAVE_JWT_ISSUER = conf.value("CLEAVE_JWT_ISSUER")
CLEAVE_ACCESS_TOKEN_TTL = conf.value("CLEAVE_ACCESS_TOKEN_TTL")

# --- the admin's sign-in throttle (django-axes) ----------------------------------------
# After CLEAVE_ADMIN_LOGIN_FAILURES failed sign-ins for one username from one
# address, or for any usernames from one address, further ones from that address
# are refused (429) for CLEAVE_ADMIN_LOGIN_COOLOFF seconds, even with the right
# password; a success resets the count. A username alone locks nothing: whoever
# knew an operator's name could lock them out from everywhere. The address is the
# client's as cleave.proxies decides it (the peer, or what the trusted proxies say).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = conf.value("CLEAVE_ADMIN_LOGIN_FAILURES")
AXES_COOLOFF_TIME = timedelta(seconds=conf.value("CLEAVE_ADMIN_LOGIN_COOLOFF"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "cleave.core.proxies.client_address"
AXES_VERBOSE = False  # no banner at every start; lockouts are still logged
# its admin offers an action that asks no permission: operators use
# `manage.py axes_list_attempts` and `axes_reset` instead
AXES_ENABLE_ADMIN = False
CLEAVE_REFRESH_TOKEN_TTL = conf.value("CLEAVE_REFRESH_TOKEN_TTL")
# Customers' sign-in limits (contexts.users.limits): failures per account from one
# address, and per address, in fixed windows; past them 429 with Retry-After.
CLEAVE_SIGNIN_FAILURES = conf.value("CLEAVE_SIGNIN_FAILURES")
CLEAVE_SIGNIN_ADDRESS_FAILURES = conf.value("CLEAVE_SIGNIN_ADDRESS_FAILURES")
CLEAVE_SIGNIN_WINDOW = conf.value("CLEAVE_SIGNIN_WINDOW")
# How many verification mails a customer may ask for again, per period.
CLEAVE_THROTTLE_VERIFY_RESEND = conf.value("CLEAVE_THROTTLE_VERIFY_RESEND")
CLEAVE_EMAIL_VERIFY_MAX_AGE = conf.value("CLEAVE_EMAIL_VERIFY_MAX_AGE")
CLEAVE_SERVICE_TOKEN_TTL = conf.value("CLEAVE_SERVICE_TOKEN_TTL")
# A service token cannot be revoked on its own (only all at once, by rotating
# CLEAVE_SERVICE_JWT_SECRET): none that lives longer than this is accepted.
CLEAVE_SERVICE_TOKEN_MAX_TTL = conf.value("CLEAVE_SERVICE_TOKEN_MAX_TTL")
if CLEAVE_SERVICE_TOKEN_TTL > CLEAVE_SERVICE_TOKEN_MAX_TTL:
    raise ImproperlyConfigured(
        f"CLEAVE_SERVICE_TOKEN_TTL ({CLEAVE_SERVICE_TOKEN_TTL}) must be at most "
        f"CLEAVE_SERVICE_TOKEN_MAX_TTL ({CLEAVE_SERVICE_TOKEN_MAX_TTL}): the contexts would "
        "refuse the tokens they mint"
    )
CLEAVE_SERVICE_TIMEOUT = conf.value("CLEAVE_SERVICE_TIMEOUT")

# --- resilience: calls across the wire (see docs/resilience.md) ----------------------------
# Each attempt of a service call times out after CALL_TIMEOUT seconds, inside the
# whole call's budget (CLEAVE_SERVICE_TIMEOUT). Idempotent calls are retried on
# technical failures with full-jitter backoff (RETRY_BASE * 2**n, at most RETRY_MAX),
# at most RETRY_ATTEMPTS attempts in all.
CLEAVE_BREAKER_CALL_TIMEOUT = conf.value("CLEAVE_BREAKER_CALL_TIMEOUT")
CLEAVE_RETRY_BASE = conf.value("CLEAVE_RETRY_BASE")
CLEAVE_RETRY_MAX = conf.value("CLEAVE_RETRY_MAX")
CLEAVE_RETRY_ATTEMPTS = conf.value("CLEAVE_RETRY_ATTEMPTS")
# A circuit breaker per target context: open when at least ERROR_THRESHOLD percent
# of the last WINDOW_CALLS calls (those of the last WINDOW_SECONDS, at least
# MIN_CALLS of them) failed for technical reasons; one trial call after RESET_TIMEOUT.
CLEAVE_BREAKER_ERROR_THRESHOLD = conf.value("CLEAVE_BREAKER_ERROR_THRESHOLD")
CLEAVE_BREAKER_MIN_CALLS = conf.value("CLEAVE_BREAKER_MIN_CALLS")
CLEAVE_BREAKER_WINDOW_CALLS = conf.value("CLEAVE_BREAKER_WINDOW_CALLS")
CLEAVE_BREAKER_WINDOW_SECONDS = conf.value("CLEAVE_BREAKER_WINDOW_SECONDS")
CLEAVE_BREAKER_RESET_TIMEOUT = conf.value("CLEAVE_BREAKER_RESET_TIMEOUT")
# Where the instances of a remote context are found: "env" (<LABEL>_SERVICE_URL, one
# or several comma-separated URLs; Kubernetes DNS when unset) or "consul".
CLEAVE_DISCOVERY = conf.value("CLEAVE_DISCOVERY")
CONSUL_HTTP_ADDR = os.environ.get("CONSUL_HTTP_ADDR", "http://127.0.0.1:8500")
CLEAVE_CONSUL_CACHE_SECONDS = conf.value("CLEAVE_CONSUL_CACHE_SECONDS")
# The base URL other processes reach this web process at, as registered in Consul
# (unset: http://<host>:<port> of gunicorn's first bind, the host name when it binds 0.0.0.0).
CLEAVE_ADVERTISE_URL = conf.value("CLEAVE_ADVERTISE_URL")
# An instance that refused a connection is skipped until its /ready answers 200
# again; it is probed every PROBE_INTERVAL seconds.
CLEAVE_DISCOVERY_PROBE_INTERVAL = conf.value("CLEAVE_DISCOVERY_PROBE_INTERVAL")

# --- HTTPS (see docs/operations.md, "HTTPS") -----------------------------------------
# Off by default: a development machine serves plain HTTP. Production behind TLS
# turns them on; `manage.py check --deploy` then reports none of W004, W008,
# W012 and W016.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# The header a TLS-terminating proxy sets to "https" (`X-Forwarded-Proto`); only
# behind a proxy that always sets or strips it, or clients could claim HTTPS.
SECURE_PROXY_SSL_HEADER = proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# probes and the scraper ask over plain HTTP inside the network
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# A refused CSRF check answers problem details (HTML only to a browser outside /api/).
CSRF_FAILURE_VIEW = "cleave.http.problems.csrf_failure"

# --- sagas ------------------------------------------------------------------------
CLEAVE_SAGA_LEASE_SECONDS = conf.value("CLEAVE_SAGA_LEASE_SECONDS")
CLEAVE_SAGA_RETRY_BASE = conf.value("CLEAVE_SAGA_RETRY_BASE")
# A step or compensation that meets a technical failure (a context unavailable, a
# breaker open, a database at its limit) waits WAIT_BASE * 2**n seconds, at most
# WAIT_MAX, and tries again, until the saga's deadline.
CLEAVE_SAGA_WAIT_BASE = conf.value("CLEAVE_SAGA_WAIT_BASE")
CLEAVE_SAGA_WAIT_MAX = conf.value("CLEAVE_SAGA_WAIT_MAX")
# How long a checkout may take before it is compensated and the order cancelled.
CLEAVE_CHECKOUT_DEADLINE = conf.value("CLEAVE_CHECKOUT_DEADLINE")
CLEAVE_EVENT_MAX_ATTEMPTS = conf.value("CLEAVE_EVENT_MAX_ATTEMPTS")
# A handler failing for a technical reason (a context or database unavailable) keeps
# being retried past MAX_ATTEMPTS while its event is younger than this many seconds.
CLEAVE_EVENT_UNAVAILABLE_WINDOW = conf.value("CLEAVE_EVENT_UNAVAILABLE_WINDOW")

# --- Celery (used when CLEAVE_EVENT_TRANSPORT=celery) ------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# --- Celery: events (issue 3 owns this block) ---
# See docs/events.md. Every exchange and queue name starts with this prefix, so
# several installations (or test runs) can share one broker.
CLEAVE_EVENT_QUEUE_PREFIX = conf.value("CLEAVE_EVENT_QUEUE_PREFIX")
CLEAVE_CELERY_APP = "config.celery.app"
# How many pending outbox rows one relay sweep publishes per alias and round.
CLEAVE_EVENT_RELAY_BATCH = 200
# A failing handler is retried after base * 2**(attempt - 1) seconds (half of it
# random jitter), at most RETRY_MAX, until CLEAVE_EVENT_MAX_ATTEMPTS; then dead-lettered.
CLEAVE_EVENT_RETRY_BASE = conf.value("CLEAVE_EVENT_RETRY_BASE")
CLEAVE_EVENT_RETRY_MAX = conf.value("CLEAVE_EVENT_RETRY_MAX")
# The relay sweep publishes pending rows older than the grace period (younger
# ones belong to the process that just committed them), every interval seconds.
CLEAVE_EVENT_RELAY_GRACE = conf.value("CLEAVE_EVENT_RELAY_GRACE")
CLEAVE_EVENT_RELAY_INTERVAL = conf.value("CLEAVE_EVENT_RELAY_INTERVAL")
# Consecutive events of one type committed close together travel in one task
# message, at most this many (1: one message per event). See docs/events.md.
CLEAVE_EVENT_MESSAGE_EVENTS = conf.value("CLEAVE_EVENT_MESSAGE_EVENTS")
# RabbitMQ: seconds the relay waits for the confirms of what it published before
# it gives up (the rows stay pending; the sweep publishes them again).
CLEAVE_EVENT_CONFIRM_TIMEOUT = conf.value("CLEAVE_EVENT_CONFIRM_TIMEOUT")
# Run the relay sweep in a thread of every Celery worker (instead of, or besides, beat).
CLEAVE_EVENT_RELAY_IN_WORKER = conf.value("CLEAVE_EVENT_RELAY_IN_WORKER")
# A retry overdue by this many seconds was lost (its worker died): the sweep sends it again.
CLEAVE_EVENT_REDELIVER_AFTER = conf.value("CLEAVE_EVENT_REDELIVER_AFTER")
# A restarted Redis (new run_id) lost what it held: events it accepted within
# this many seconds before are published again (consumers drop the duplicates).
CLEAVE_EVENT_REDIS_REPUBLISH_WINDOW = conf.value("CLEAVE_EVENT_REDIS_REPUBLISH_WINDOW")
CELERY_TASK_DEFAULT_QUEUE = f"{CLEAVE_EVENT_QUEUE_PREFIX}celery"
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = env_float(
    "CELERY_BROKER_CONNECTION_TIMEOUT", default=3, minimum=0.001
)
# Celery's Django fixup closes every database connection before and after each
# task unless told to reuse them: reconnecting costs more than most handlers.
# (A worker that hits a broken connection closes them all itself.)
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", default=100) or None
if CELERY_BROKER_URL.startswith(("redis://", "rediss://", "sentinel://")):
    # Redis has no acknowledgements: a message a worker took waits in an
    # "unacked" set and returns to its queue after the visibility timeout. It
    # must exceed the longest message's handler runs (a message may carry up to
    # CLEAVE_EVENT_MESSAGE_EVENTS events) and CLEAVE_EVENT_RETRY_MAX.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": conf.value("CLEAVE_REDIS_VISIBILITY_TIMEOUT"),
        "unacked_restore_interval": conf.value("CLEAVE_REDIS_RESTORE_INTERVAL"),
        "unacked_restore_throttle": 1,
        # The lock a worker holds while it re-queues such messages, one for all
        # queues. A worker that dies holding it stops every worker from
        # re-queueing until it expires (kombu's default: 300 s). A scan takes
        # milliseconds, and each message is moved in a transaction that
        # watches the unacked set, so a lock that expired mid-scan is harmless.
        "unacked_mutex_expire": conf.value("CLEAVE_REDIS_RESTORE_LOCK"),
    }
else:
    # RabbitMQ: every publish waits for the broker's confirm (persisted to disk
    # for a durable queue) before the relay marks the outbox row published.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
# --- Celery: sagas and periodic jobs (issue 4 owns this block) ---
# How sagas run: "inprocess" (driven by the process that starts them) or
# "celery" (the task `cleave.sagas.run` on the owning context's queue, named
# like the event queues). Unset, it follows CLEAVE_EVENT_TRANSPORT. See docs/sagas.md.
CLEAVE_SAGA_RUNNER = conf.value("CLEAVE_SAGA_RUNNER")

# --- logging ----------------------------------------------------------------------
LOG_LEVEL = conf.value("CLEAVE_LOG_LEVEL")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "cleave.observability.logs.LogContextFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(context)s "
            "%(request_id)s %(correlation_id)s %(causation_id)s %(trace_id)s %(span_id)s "
            "%(process)d",
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": conf.value("CLEAVE_LOG_FORMAT"),
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
