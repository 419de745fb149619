"""Settings for the test project, read from the environment (django-environ).

DATABASE_URL      default sqlite:///<repo>/var/demo.sqlite3
TEST_DATABASE_NAME  test database name for server databases (SQLite: a file in var/)
REDIS_URL         when set, adds a second TASKS backend "redis" using the Redis broker
JOBS_OPTIONS      JSON merged into every TASKS backend's OPTIONS
JOBS_QUEUES       JSON list, every TASKS backend's QUEUES (default ["default", "emails", "reports"];
                  '[]' allows any queue name)
JOBS_LOG_LEVEL    level of the "django_jobs" logger (default INFO)
JOBS_SCHEDULES    JSON replacing the demo's code-declared schedules ('{}' for none)
JOBS_TRACE_FILE   when set, every OpenTelemetry span is written to this file (one JSON a line)
"""

from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent
(BASE_DIR / "var").mkdir(exist_ok=True)

env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="django-insecure-dev-only-not-for-production")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = ["*"]
# The suite's worker processes silence django_jobs.W002 (their 3 s lease is far below the
# default 30 s shutdown_timeout, on purpose); a real project should heed it.
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_jobs",
    "testproject.demo",
]
if django.VERSION < (6, 0):
    # Django 5.2: the django-tasks backport provides the Tasks API (docs/django-versions.md).
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = "testproject.wsgi.application"

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

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'demo.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so that runworker subprocesses started by tests share it.
    _db["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{Path(_db['NAME']).name}")}
elif env("TEST_DATABASE_NAME", default=""):
    _db["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}
if _db["ENGINE"] == "django.db.backends.mysql":
    _db["OPTIONS"] = {"charset": "utf8mb4", "isolation_level": "read committed"}
_db.setdefault("CONN_MAX_AGE", 0)

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

JOBS_OPTIONS = env.json("JOBS_OPTIONS", default={})
# Several queues, as most projects declare them (an empty list would allow any name).
JOBS_QUEUES = env.json("JOBS_QUEUES", default=["default", "emails", "reports"])
TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": JOBS_QUEUES,
        "OPTIONS": {"broker": "database", **JOBS_OPTIONS},
    },
}
# Code-declared schedules, synced into the Schedule table when beat starts (runbeat, or
# runworker --beat). Operators can still change them in the admin.
JOBS_SCHEDULES = env.json(
    "JOBS_SCHEDULES",
    default={
        "demo: add every 10 seconds": {
            "task": "testproject.demo.tasks.add",
            "interval": 10,
            "args": [2, 3],
            "description": "Declared in testproject/settings.py (JOBS_SCHEDULES).",
        },
    },
)
# OpenTelemetry: spans of enqueues and attempts to a file, one JSON a line (the tests' workers).
if JOBS_TRACE_FILE := env("JOBS_TRACE_FILE", default=""):
    from testproject.tracing import export_spans_to

    export_spans_to(JOBS_TRACE_FILE)
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    TASKS["redis"] = {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": JOBS_QUEUES,
        "OPTIONS": {"broker": "redis", "redis_url": REDIS_URL, **JOBS_OPTIONS},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "django_jobs": {
            "handlers": ["console"],
            "level": env("JOBS_LOG_LEVEL", default="INFO"),
        },
        # Django's own per-task lines ("Task id=… state=…"): as verbose as ours. The backport
        # on Django 5.2 logs them as "django_tasks".
        "django.tasks": {"level": env("JOBS_LOG_LEVEL", default="INFO")},
        "django_tasks": {"level": env("JOBS_LOG_LEVEL", default="INFO")},
    },
}
