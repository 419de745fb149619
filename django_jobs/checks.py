"""System checks: misconfiguration shows up in ``manage.py check`` with a hint."""

from django.apps import apps
from django.conf import settings
from django.core import checks

from .conf import BROKERS, JobsOptions


def check_backend(backend) -> list[checks.CheckMessage]:
    """Check one JobsBackend's OPTIONS and the database it stores jobs in."""
    options = backend.options
    errors: list[checks.CheckMessage] = []
    where = f"TASKS[{backend.alias!r}]['OPTIONS']"
    unknown = JobsOptions.unknown_keys(options)
    if unknown:
        errors.append(
            checks.Error(
                f"{where} has unknown key(s): {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(JobsOptions.__dataclass_fields__)}.",
                id="django_jobs.E001",
            )
        )
    jobs_options = backend.jobs_options
    if jobs_options.broker not in BROKERS:
        errors.append(
            checks.Error(
                f"{where}['broker'] is {jobs_options.broker!r}.",
                hint=f"Use one of: {', '.join(BROKERS)}.",
                id="django_jobs.E002",
            )
        )
    if jobs_options.broker == "redis" and not jobs_options.redis_url:
        errors.append(
            checks.Error(
                f"{where} uses the redis broker without 'redis_url'.",
                hint="Set 'redis_url': 'redis://host:6379/0'.",
                id="django_jobs.E003",
            )
        )
    if jobs_options.broker == "redis" and jobs_options.redis_url:
        errors += check_redis(jobs_options.redis_url, where)
    if jobs_options.database not in settings.DATABASES:
        errors.append(
            checks.Error(
                f"{where}['database'] is {jobs_options.database!r}, not a DATABASES alias.",
                hint=f"Use one of: {', '.join(settings.DATABASES)}.",
                id="django_jobs.E004",
            )
        )
        return errors
    if jobs_options.heartbeat_interval * 2 > jobs_options.lease_seconds:
        errors.append(
            checks.Error(
                f"{where}: heartbeat_interval ({jobs_options.heartbeat_interval}s) must be at "
                f"most half of lease_seconds ({jobs_options.lease_seconds}s).",
                hint="Otherwise a live worker's jobs could be rescued as if it had died.",
                id="django_jobs.E005",
            )
        )
    database = settings.DATABASES[jobs_options.database]
    if database["ENGINE"].endswith("sqlite3"):
        db_options = database.get("OPTIONS", {})
        if str(db_options.get("transaction_mode", "")).upper() != "IMMEDIATE":
            errors.append(
                checks.Warning(
                    "Jobs are stored in SQLite without transaction_mode 'IMMEDIATE'.",
                    hint="Set DATABASES[...]['OPTIONS'] = {'transaction_mode': 'IMMEDIATE', "
                    "'timeout': 30, 'init_command': 'PRAGMA journal_mode=WAL;'} so several "
                    "worker processes never hit 'database is locked'.",
                    id="django_jobs.W001",
                )
            )
    return errors


def check_redis(url: str, where: str) -> list[checks.CheckMessage]:
    """Check that ``redis_url`` parses and that the server answers PING."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    except ValueError as e:
        return [
            checks.Error(
                f"{where}['redis_url'] is not a Redis URL: {e}",
                hint="Use redis://[[user]:password@]host[:port][/db], rediss://… for TLS, "
                "or unix:///path/to/redis.sock.",
                id="django_jobs.E006",
            )
        ]
    try:
        client.ping()
    except redis.RedisError as e:
        return [
            checks.Error(
                f"{where}['redis_url']: Redis is unreachable ({e}).",
                hint="Start Redis, or check the host, port, password and TLS of 'redis_url'.",
                id="django_jobs.E007",
            )
        ]
    finally:
        client.close()
    return []


@checks.register
def check_tasks_app(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """On Django 5.2, check that the django-tasks backport is an installed app."""
    from .tasks_api import BACKPORT

    if BACKPORT and not apps.is_installed("django_tasks"):
        return [
            checks.Error(
                "Django 5.2: the django-tasks backport is not in INSTALLED_APPS.",
                hint="Add 'django_tasks' to INSTALLED_APPS; without it no TASKS backend "
                "is checked by 'manage.py check' (see docs/django-versions.md).",
                id="django_jobs.E030",
            )
        ]
    return []
