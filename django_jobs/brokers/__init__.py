"""Brokers: how a job id travels from enqueue to a worker's claim.

Only the broker a backend names is imported: the database broker needs no Redis client, and
psycopg only on PostgreSQL (for LISTEN).
"""

REDIS_MISSING = (
    'The "redis" broker needs the redis package, which is not installed: '
    'pip install "django-jobs[redis]".'
)


def get_broker(backend):
    """Return the broker a backend's OPTIONS ask for."""
    if backend.jobs_options.broker == "database":
        from django_jobs.brokers.database import DatabaseBroker

        return DatabaseBroker(backend.jobs_options, backend.alias)
    from django.core.exceptions import ImproperlyConfigured

    if backend.jobs_options.broker == "redis":
        try:
            from django_jobs.brokers.fallback import RedisWithFallback
            from django_jobs.brokers.redis.broker import RedisBroker
        except ModuleNotFoundError as e:
            if e.name != "redis":
                raise
            raise ImproperlyConfigured(REDIS_MISSING) from e
        return RedisWithFallback(RedisBroker(backend.jobs_options, backend.alias))
    raise ImproperlyConfigured(f"Unknown broker {backend.jobs_options.broker!r}.")
