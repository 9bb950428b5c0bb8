"""Pushwatch settings, read from the environment (django-environ).

Unset ``DATABASE_URL`` / ``REDIS_URL`` select the embedded services in ``config/embedded.py``;
set, the same code talks to real servers.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

from config import embedded

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="pushwatch-insecure-development-key-change-me-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

DATABASE_URL = env.str("DATABASE_URL", default="") or embedded.ensure_postgres()
REDIS_URL = env.str("REDIS_URL", default="") or embedded.ensure_redis()

DATABASES = {"default": env.db_url_config(DATABASE_URL)}
# A unix-socket directory arrives percent-encoded in the URL's host (the embedded server uses one).
DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
# psycopg's connection pool (Django's built-in support). config/asgi.py turns it on for the web process: there a
# request otherwise pays a new PostgreSQL connection (bench.asgi_servers: 1.5x the requests/s with the pool), and
# CONN_MAX_AGE is no fit for ASGI. Worker processes keep plain connections: a pool's threads do not survive fork.
if env.bool("DB_POOL", default=False):
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured("DB_POOL=1 cannot be combined with CONN_MAX_AGE > 0: pick one.")
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 1, "max_size": env.int("DB_POOL_MAX_SIZE", default=10)}
# Django turns psycopg's automatic prepared statements off (for transaction-pooling proxies such as PgBouncer).
# Only the hot paths that use a server-side-binding cursor (config.sql.execute_prepared: message send, push fan-out,
# event insert) are affected: each statement is prepared after 5 runs on a connection and not re-planned after
# that. DB_PREPARE_THRESHOLD=0 turns it off again.
_prepare_threshold = env.int("DB_PREPARE_THRESHOLD", default=5)
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = _prepare_threshold or None
DATABASES["default"]["OPTIONS"].setdefault("application_name", env.str("DB_APPLICATION_NAME", default="pushwatch"))
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default=None)}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: no CDN needed
    "channels",
    "messaging",
    "pushes",
    "realtime",
    "flags",
    "telemetry",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.errors.ApiErrorMiddleware",
]

ROOT_URLCONF = "config.urls"
AUTH_USER_MODEL = "messaging.User"
LOGIN_URL = "/dashboard/login/"
LOGIN_REDIRECT_URL = "/dashboard/"

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

ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Served by WhiteNoise straight from the app/static folders: no collectstatic step needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Largest request body accepted anywhere (telemetry batches are the biggest: 500 entries).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "pw",
    }
}

# Channel layer (chosen by measurement, bench/live_feed.py): Redis pub/sub publishes once per group_send and
# fans out inside each ASGI process, so its cost does not grow with the number of sockets; the list-based
# RedisChannelLayer is kept selectable (CHANNEL_LAYER=lists). Either way a dropped message is detected by the
# consumers (per-publisher sequence numbers) and counted in realtime.queries.feed_loss_counters().
CHANNEL_LAYER = env.str("CHANNEL_LAYER", default="pubsub")
# Redis pub/sub channels ignore the database number, so the prefix carries it: two deployments (or test runs)
# sharing one Redis server on different databases never hear each other's events.
_REDIS_DB = urlparse(REDIS_URL).path.strip("/")
CHANNEL_PREFIX = f"pw:asgi:{_REDIS_DB if _REDIS_DB.isdigit() else 0}"
# The staff feed's hub (realtime.feedhub) sends each socket at most one frame per interval, many events per frame.
FEED_FLUSH_SECONDS = env.float("FEED_FLUSH_SECONDS", default=0.02)
CHANNEL_LAYERS = {
    "default": (
        {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_PREFIX},
        }
        if CHANNEL_LAYER == "pubsub"
        else {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_PREFIX, "capacity": 1000, "expiry": 60},
        }
    )
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("THROTTLE_USER_RATE", default="6000/min"),
        "telemetry": env.str("THROTTLE_TELEMETRY_RATE", default="120/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Pushwatch API",
    "DESCRIPTION": "Messaging, sync, receipts, devices, realtime events, remote config and telemetry.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: broker defaults to Redis; RabbitMQ works too (amqp://guest:guest@127.0.0.1:5672//).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# Push pipeline (DESIGN.md behaviour 5-7).
FCM_PROJECT_ID = env.str("FCM_PROJECT_ID", default="pushwatch-demo")
FCM_SERVICE_ACCOUNT_FILE = env.str(
    "FCM_SERVICE_ACCOUNT_FILE", default=str(BASE_DIR / "var" / "fcm-service-account.json")
)
FCM_BASE_URL = env.str("FCM_BASE_URL", default="https://fcm.googleapis.com")
FCM_MAX_CONCURRENT_STREAMS = env.int("FCM_MAX_CONCURRENT_STREAMS", default=100)
PUSH_COALESCE_WINDOW_SECONDS = env.float("PUSH_COALESCE_WINDOW_SECONDS", default=2.5)
PUSH_MAX_ATTEMPTS = env.int("PUSH_MAX_ATTEMPTS", default=5)
PUSH_LEASE_SECONDS = env.float("PUSH_LEASE_SECONDS", default=60.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}
