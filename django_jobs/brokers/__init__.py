"""Brokers: how a job id travels from enqueue to a worker's claim."""


def get_broker(backend):
    """Return the broker a backend's OPTIONS ask for."""
    if backend.jobs_options.broker == "database":
        from django_jobs.brokers.database import DatabaseBroker

        return DatabaseBroker(backend.jobs_options, backend.alias)
    if backend.jobs_options.broker == "redis":
        from django_jobs.brokers.fallback import RedisWithFallback
        from django_jobs.brokers.redis.broker import RedisBroker

        return RedisWithFallback(RedisBroker(backend.jobs_options, backend.alias))
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"Unknown broker {backend.jobs_options.broker!r}.")
