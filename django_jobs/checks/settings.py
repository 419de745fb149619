"""System checks: misconfiguration shows up in ``manage.py check`` with a hint."""

from django.apps import apps
from django.conf import settings
from django.core import checks

from django_jobs.checks.options import check_option_values, valid
from django_jobs.conf import BROKERS, JobsOptions


def check_backend(backend) -> list[checks.CheckMessage]:
    """Check one JobsBackend's OPTIONS and the database it stores jobs in."""
    options = backend.options
    errors: list[checks.CheckMessage] = []
    if not apps.is_installed("django_jobs"):
        errors.append(
            checks.Error(
                f"TASKS[{backend.alias!r}] uses JobsBackend, but 'django_jobs' is not in "
                "INSTALLED_APPS.",
                hint="Add 'django_jobs' to INSTALLED_APPS and run 'manage.py migrate': the "
                "backend stores jobs in its models.",
                id="django_jobs.E022",
            )
        )
    where = f"TASKS[{backend.alias!r}]['OPTIONS']"
    errors += check_option_values(options, where)
    if not isinstance(options, dict):
        return errors
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
    if valid(options, "broker") and jobs_options.broker not in BROKERS:
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
    if jobs_options.broker == "redis" and not redis_installed():
        errors.append(
            checks.Error(
                f"{where} uses the redis broker, but the redis package is not installed.",
                hint='pip install "django-jobs[redis]" (or redis>=5.0).',
                id="django_jobs.E008",
            )
        )
    elif jobs_options.broker == "redis" and jobs_options.redis_url and valid(options, "redis_url"):
        errors += check_redis(jobs_options.redis_url, where)
    if not valid(options, "database"):
        return errors
    if jobs_options.database not in settings.DATABASES:
        errors.append(
            checks.Error(
                f"{where}['database'] is {jobs_options.database!r}, not a DATABASES alias.",
                hint=f"Use one of: {', '.join(settings.DATABASES)}.",
                id="django_jobs.E004",
            )
        )
        return errors
    timing_valid = valid(options, "heartbeat_interval") and valid(options, "lease_seconds")
    if timing_valid and jobs_options.heartbeat_interval * 2 > jobs_options.lease_seconds:
        errors.append(
            checks.Error(
                f"{where}: heartbeat_interval ({jobs_options.heartbeat_interval}s) must be at "
                f"most half of lease_seconds ({jobs_options.lease_seconds}s).",
                hint="Otherwise a live worker's jobs could be rescued as if it had died.",
                id="django_jobs.E005",
            )
        )
    if (
        valid(options, "shutdown_timeout")
        and valid(options, "lease_seconds")
        and jobs_options.shutdown_timeout >= jobs_options.lease_seconds
    ):
        errors.append(
            checks.Warning(
                f"{where}: shutdown_timeout ({jobs_options.shutdown_timeout}s) is not shorter "
                f"than lease_seconds ({jobs_options.lease_seconds}s).",
                hint="A stopping worker keeps renewing its jobs' leases, but if it is killed "
                "during that grace period (a process manager's stop timeout, an OOM kill) its "
                "jobs run again only after their leases expire, and a job that outlives the "
                "grace period is handed back only then. Keep shutdown_timeout below "
                "lease_seconds, and give the process manager longer than shutdown_timeout.",
                id="django_jobs.W002",
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


def redis_installed() -> bool:
    """Whether redis-py imports (asked only when a backend uses the redis broker)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        return False
    return True


def check_redis(url: str, where: str) -> list[checks.CheckMessage]:
    """Check that ``redis_url`` parses (reachability is a deployment check: see below)."""
    import redis

    try:
        redis.Redis.from_url(url).close()
    except ValueError as e:
        return [
            checks.Error(
                f"{where}['redis_url'] is not a Redis URL: {e}",
                hint="Use redis://[[user]:password@]host[:port][/db], rediss://… for TLS, "
                "or unix:///path/to/redis.sock.",
                id="django_jobs.E006",
            )
        ]
    return []


@checks.register(deploy=True)
def check_redis_reachable(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``check --deploy`` only: warn when a Redis broker's server does not answer PING.

    Not an error, and not run by every command: with Redis down, workers claim from the
    database and enqueue still writes the row, so ``migrate`` or ``runworker`` must not fail.
    """
    from django_jobs.backend import JobsBackend
    from django_jobs.tasks_api import task_backends

    messages: list[checks.CheckMessage] = []
    for backend in task_backends.all():
        if not isinstance(backend, JobsBackend):
            continue
        options = backend.jobs_options
        if options.broker == "redis" and options.redis_url and redis_installed():
            messages += ping_redis(options.redis_url, f"TASKS[{backend.alias!r}]['OPTIONS']")
    return messages


def ping_redis(url: str, where: str) -> list[checks.CheckMessage]:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    except ValueError:
        return []  # E006 reports it
    try:
        client.ping()
    except redis.RedisError as e:
        return [
            checks.Warning(
                f"{where}['redis_url']: Redis is unreachable ({e}).",
                hint="Start Redis, or check the host, port, password and TLS of 'redis_url'. "
                "Meanwhile workers claim jobs from the database and enqueue still works.",
                id="django_jobs.W007",
            )
        ]
    finally:
        client.close()
    return []


@checks.register
def check_tasks_app(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """On Django 5.2, check that the django-tasks backport is an installed app."""
    from django_jobs.tasks_api import BACKPORT

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
