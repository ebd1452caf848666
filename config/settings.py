"""
Settings for the Cleave project.

Everything that differs between machines comes from the environment, with
defaults that run the whole system on embedded SQLite files and an in-process
event bus. Each variable is declared once, by the platform
(`cleave.core.conf`) or by the context it belongs to (`contexts/<label>/conf.py`);
`conf.install()` below makes each a setting of the same name, and this module
reads here only those that feed a setting of another name or are derived.
docs/configuration.md lists them all (generated: `manage.py configuration`).
"""

import os
from datetime import timedelta
from pathlib import Path

from cleave.core import conf
from cleave.core.databases import database_settings, with_query_metrics
from cleave.core.env import require_strong_secrets
from cleave.core.registry import local_context_names
from cleave.runtime import bootstrap

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(conf.value("CLEAVE_DATA_DIR") or BASE_DIR / "var").resolve()
# made private when it is made (it holds the SQLite files and generated secrets);
# a directory the operator chose is left as it is
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)

DEBUG = conf.value("DJANGO_DEBUG")
SECRET_KEY = conf.value("DJANGO_SECRET_KEY", data_dir=DATA_DIR)
CLEAVE_JWT_SECRET = conf.value("CLEAVE_JWT_SECRET", data_dir=DATA_DIR)
CLEAVE_SERVICE_JWT_SECRET = conf.value("CLEAVE_SERVICE_JWT_SECRET", data_dir=DATA_DIR)
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
ALLOWED_HOSTS = conf.value("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = conf.value("DJANGO_CSRF_TRUSTED_ORIGINS")
# Behind a gateway that asks each service by its own name (a mesh routes by Host) and
# passes the client's host in X-Forwarded-Host: links are built with the client's.
USE_X_FORWARDED_HOST = conf.value("DJANGO_USE_X_FORWARDED_HOST")
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
# Every declared setting (the platform's, and every context's: a split process
# needs some of the contexts it does not serve, the currency among them) becomes
# a setting of its own name: CLEAVE_RETRY_BASE, CLEAVE_CURRENCY, EMAIL_HOST...
conf.install(globals(), package=CLEAVE_CONTEXT_PACKAGE, labels=CLEAVE_ALL_CONTEXTS)
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
# The buckets of django-prometheus's histogram of query time per alias: its own
# start at 10 ms, which nearly every query here takes less than.
PROMETHEUS_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"),
)  # fmt: skip

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
    # the deployment and contract tools' commands, for manage.py and the tests: a
    # process that serves (web, worker, beat: its role declared before these
    # settings load) never loads them
    *([] if bootstrap.serving() else ["cleave_tools"]),
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
# Each alias through a backend that counts its queries, errors and connections
# (django-prometheus's metrics, per alias: docs/observability.md).
DATABASES = with_query_metrics(database_settings(CLEAVE_CONTEXTS, data_dir=DATA_DIR))
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
# (EMAIL_HOST, EMAIL_PORT and DEFAULT_FROM_EMAIL are installed above)
EMAIL_BACKEND = conf.value("DJANGO_EMAIL_BACKEND")
EMAIL_FILE_PATH = DATA_DIR / "mail"

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

# The throttles' counts. In each process's memory, through django-prometheus's
# backend (lookups, hits and misses counted); its Redis backends need django-redis,
# so a shared Redis cache is Django's own, uncounted (docs/observability.md).
CACHES = {
    "default": {
        "BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache",
        "LOCATION": "cleave",
    }
}
if conf.value("CLEAVE_CACHE_URL"):
    CACHES["default"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": conf.value("CLEAVE_CACHE_URL"),
    }

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
# --- HTTPS (see docs/operations.md, "HTTPS") -----------------------------------------
# Off by default: a development machine serves plain HTTP. Production behind TLS
# turns them on; `manage.py check --deploy` then reports none of W004, W008,
# W012 and W016.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = conf.value("DJANGO_SECURE_COOKIES")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = conf.value("DJANGO_SECURE_HSTS_SECONDS")
SECURE_HSTS_INCLUDE_SUBDOMAINS = conf.value("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = conf.value("DJANGO_SECURE_HSTS_PRELOAD")
# The header a TLS-terminating proxy sets to "https" (`X-Forwarded-Proto`); only
# behind a proxy that always sets or strips it, or clients could claim HTTPS.
SECURE_PROXY_SSL_HEADER = conf.value("DJANGO_SECURE_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = conf.value("DJANGO_SECURE_SSL_REDIRECT")
# probes and the scraper ask over plain HTTP inside the network
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# A refused CSRF check answers problem details (HTML only to a browser outside /api/).
CSRF_FAILURE_VIEW = "cleave.http.problems.csrf_failure"

# --- Celery (used when CLEAVE_EVENT_TRANSPORT=celery; see docs/events.md) ----------------------
# (CELERY_BROKER_URL and CELERY_BROKER_CONNECTION_TIMEOUT are installed above)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CLEAVE_CELERY_APP = "config.celery.app"
# How many pending outbox rows one relay sweep publishes per alias and round.
CLEAVE_EVENT_RELAY_BATCH = 200
CELERY_TASK_DEFAULT_QUEUE = f"{conf.value('CLEAVE_EVENT_QUEUE_PREFIX')}celery"
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection before and after each
# task unless told to reuse them: reconnecting costs more than most handlers.
# (A worker that hits a broken connection closes them all itself.)
CELERY_DB_REUSE_MAX = conf.value("CELERY_DB_REUSE_MAX") or None
if conf.value("CELERY_BROKER_URL").startswith(("redis://", "rediss://", "sentinel://")):
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

# --- logging ----------------------------------------------------------------------
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
    "root": {"handlers": ["console"], "level": conf.value("CLEAVE_LOG_LEVEL")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
