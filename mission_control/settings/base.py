"""Settings for every environment, read from the process environment.

With no environment at all the product runs embedded: SQLite and the in-memory
channel layer in one process. DATABASE_URL and REDIS_URL (or REDIS_SENTINELS)
switch to PostgreSQL and channels-redis for several workers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ

from mission_control.redis_topology import hosts_from_environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # daphne first so that `manage.py runserver` serves ASGI (HTTP, SSE and WebSockets).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "accounts",
    "rover",
    "comms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A hung Redis holds no answer: publishes wait PUBLISH_WAIT_SECONDS in all at most.
    "streams.middleware.publish_wait_middleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.BearerTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mission_control.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]
# The API answers CSRF failures in JSON (401 for anonymous writes); pages keep Django's.
CSRF_FAILURE_VIEW = "accounts.csrf.csrf_failure"

ROOT_URLCONF = "mission_control.urls"
ASGI_APPLICATION = "mission_control.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# SQLite by default; WAL and IMMEDIATE transactions keep concurrent writers
# (ingest, chat, admin) from failing with "database is locked".
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, every connection of it (pooled or not) a DeadlineConnection:
    # its round trips give up after DATABASE_QUERY_DEADLINE_SECONDS in server processes
    # (mission_control.database_deadline), so a hung server answers 503.
    DATABASES["default"]["ENGINE"] = "mission_control.postgresql"
    # Connecting is no round trip of a connection: a server that accepts TCP but never
    # answers (hung) held a connect for psycopg's default 130 s. A connect_timeout in
    # DATABASE_URL wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=10)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif DATABASES["default"]["ENGINE"] == "mission_control.postgresql" and env.int(
    "DATABASE_POOL_MAX", default=20
):
    # A connection pool per worker process. Persistent connections (CONN_MAX_AGE)
    # do not work under ASGI: every HTTP request runs in its own thread, whose kept
    # connection outlives it until garbage collection (Django #33497). The pool
    # makes each open/close a cheap check-out/return instead; chat and ingest
    # write on every message, so connecting each time cost more than the write.
    from mission_control.database_deadline import DeadlineConnection  # needs psycopg

    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=20),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        # The pool makes its connections with the deadline too, so that its own
        # checks and resets of a connection are bounded as well.
        "connection_class": DeadlineConnection,
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))

# Seconds one round trip to PostgreSQL may take in a server process before its
# connection is closed and the request answers 503 (pool or not); 0: none.
DATABASE_QUERY_DEADLINE_SECONDS = env.float("DATABASE_QUERY_DEADLINE_SECONDS", default=10.0)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: REDIS_URL (one URL, or several comma-separated: shards), or REDIS_SENTINELS
# with REDIS_SENTINEL_MASTER (see mission_control.redis_topology). Empty: no Redis.
# The channel layer and every direct client (presence, rate limits, /readyz) use
# these hosts, and put a key on the shard channels-redis would put a channel of
# that name on.
REDIS_HOSTS = hosts_from_environ(env.ENVIRON)
CHANNEL_LAYER_PREFIX = env.str("CHANNEL_LAYER_PREFIX", default="asgi")
# Presence and chat rate limits share one Redis pool per worker: at most
# REDIS_MAX_CONNECTIONS connections; a call waits up to REDIS_POOL_TIMEOUT seconds
# for a free one (a connection storm queues, it never drops a socket).
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", default=50)
REDIS_POOL_TIMEOUT = env.float("REDIS_POOL_TIMEOUT", default=10.0)
# One channel-layer member per worker process (see streams.hub), so a channel
# may see bursts of every stream at once: capacity is sized for that, never the
# default 100 that silently drops ("over capacity").
CHANNEL_LAYER_CAPACITY = env.int("CHANNEL_LAYER_CAPACITY", default=10000)


def redis_channel_layers(hosts: list, prefix: str) -> dict:
    """Return CHANNEL_LAYERS on channels-redis (the test settings and fixtures switch to it)."""
    return {
        "default": {
            "BACKEND": "streams.layers.RedisChannelLayer",
            "CONFIG": {
                "hosts": hosts,
                "prefix": prefix,
                "capacity": CHANNEL_LAYER_CAPACITY,
                "expiry": 60,
            },
        }
    }


if REDIS_HOSTS:
    CHANNEL_LAYERS = redis_channel_layers(REDIS_HOSTS, CHANNEL_LAYER_PREFIX)
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_LAYER_CAPACITY, "expiry": 60},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes checks every password login (the admin's, /accounts/login/, any view
# calling authenticate()) before Django's backend, and refuses further attempts from
# an address after LOGIN_FAILURE_LIMIT failures within LOGIN_LOCKOUT_MINUTES.
AUTHENTICATION_BACKENDS = [
    "accounts.backends.LoginRateLimitBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15.0))
# By client address: one address guessing many users' passwords is stopped too, and
# nobody can lock a user out everywhere by mistyping their name. Behind nginx,
# uvicorn's --proxy-headers (on by default, trusting 127.0.0.1) makes REMOTE_ADDR
# the client's address.
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
# Axes never deletes its login access logs (one row per successful login): the
# prune_login_records command, run from cron, keeps this many days of them.
LOGIN_LOG_RETENTION_DAYS = env.int("LOGIN_LOG_RETENTION_DAYS", default=90)
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Outgoing mail (password reset links): EMAIL_URL in django-environ's forms
# (smtp://user:password@host:25, smtp+tls://...:587, smtp+ssl://...:465). Without it
# development prints mails on the console, and production turns reset by email off.
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    _email = env.email_url_config(EMAIL_URL)
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
    EMAIL_PORT = _email["EMAIL_PORT"] or 25
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
    EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# Seconds a mail server may take per step; without it one that never answers holds the sender.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="mission-control@localhost")
PASSWORD_RESET_BY_EMAIL = True

# Product settings.
DEFAULT_ROVER_SLUG = env.str("DEFAULT_ROVER_SLUG", default="curiosity")
PUBLIC_FEEDS = env.bool("PUBLIC_FEEDS", default=False)
# The API token `simulate_rover` posts with; empty: its own, kept under the user's data directory.
SIMULATOR_TOKEN = env.str("SIMULATOR_TOKEN", default="")
IMAGE_MAX_BYTES = env.int("IMAGE_MAX_BYTES", default=2 * 1024**3)
# Unfinished tus uploads one user may hold at once (each may grow to IMAGE_MAX_BYTES
# and lives 24 h); 0: no cap.
UPLOAD_MAX_OPEN_PER_USER = env.int("UPLOAD_MAX_OPEN_PER_USER", default=10)
# Pixels (width x height) an image may have; checked from the header before any
# decoding. A decode costs up to 4 bytes a pixel: 40 MP stays within 160 MB.
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=40_000_000)
# Thumbnails made at once per worker process (each may hold a decoded image).
THUMBNAIL_CONCURRENCY = env.int("THUMBNAIL_CONCURRENCY", default=1)
# How far ahead of the server's clock a client timestamp may be (recorded_at,
# captured_at, since/until); anything before 1970-01-01 is always refused.
TIMESTAMP_MAX_FUTURE_SECONDS = env.float("TIMESTAMP_MAX_FUTURE_SECONDS", default=86400.0)
# 1 MiB: the smallest chunk within 10% of the fastest in bench/images.py.
IMAGE_STREAM_CHUNK_BYTES = env.int("IMAGE_STREAM_CHUNK_BYTES", default=1024 * 1024)
# Behind nginx with deploy/nginx.conf: after the access check, image downloads are
# sent by nginx (X-Accel-Redirect to its internal /_accel/ locations over MEDIA_ROOT).
IMAGE_ACCEL_REDIRECT = env.bool("IMAGE_ACCEL_REDIRECT", default=False)
SSE_HEARTBEAT_SECONDS = env.float("SSE_HEARTBEAT_SECONDS", default=15.0)
SSE_RETRY_MS = env.int("SSE_RETRY_MS", default=2000)
STREAM_SUBSCRIBER_QUEUE = env.int("STREAM_SUBSCRIBER_QUEUE", default=1000)
# Over Redis, an event still missing after this long (say, lost while a worker
# reconnected) cuts the stream's subscribers off so they replay it by id.
STREAM_GAP_GRACE_SECONDS = env.float("STREAM_GAP_GRACE_SECONDS", default=1.0)
# How often each worker checks for rovers gone silent (link-lost alarm); 0 disables.
ALARM_WATCHDOG_SECONDS = env.float("ALARM_WATCHDOG_SECONDS", default=1.0)
# prune_telemetry keeps rollups (what long history windows read) this long, at
# least as long as frames: "<n>d", "<n>h" or "<n>m"; empty keeps them forever.
TELEMETRY_ROLLUP_RETENTION = env.str("TELEMETRY_ROLLUP_RETENTION", default="730d")
CHAT_RATE_MESSAGES = env.int("CHAT_RATE_MESSAGES", default=10)
CHAT_RATE_SECONDS = env.float("CHAT_RATE_SECONDS", default=5.0)
# history/resume requests per socket: a burst, then this many a second (comms.throttle).
CHAT_REPLAY_BURST = env.int("CHAT_REPLAY_BURST", default=10)
CHAT_REPLAY_PER_SECOND = env.float("CHAT_REPLAY_PER_SECOND", default=2.0)
# Team-room presence: entries older than the TTL are ghosts (a dead worker's sockets);
# each worker refreshes its own sockets' entries every PRESENCE_REFRESH_SECONDS.
PRESENCE_TTL_SECONDS = env.float("PRESENCE_TTL_SECONDS", default=30.0)
PRESENCE_REFRESH_SECONDS = env.float("PRESENCE_REFRESH_SECONDS", default=10.0)

LOG_ROVER_UPLINK = env.bool("LOG_ROVER_UPLINK", default=False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "redact_tokens": {"()": "accounts.logging.RedactTokensFilter"},
        "quiet_rover_uplink": {"()": "rover.log_filters.QuietRoverUplinkFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Servers log WebSocket paths with their query string (`?token=`): route
        # them through the redacting handler instead of their own.
        "django.channels.server": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
            # Accepted telemetry and image posts (10 a second from a rover) are not logged.
            "filters": [] if LOG_ROVER_UPLINK else ["quiet_rover_uplink"],
        },
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": [], "level": "INFO", "propagate": True},
        "uvicorn.access": {"handlers": [], "level": "INFO", "propagate": True},
        "daphne": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# Development serves static files straight from the finders; production from
# STATIC_ROOT with hashed, compressed names (see production.py).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
