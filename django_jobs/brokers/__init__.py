"""Brokers: how a job id travels from enqueue to a worker's claim."""


def get_broker(backend):
    """Return the broker a backend's OPTIONS ask for."""
    if backend.jobs_options.broker == "database":
        from .database import DatabaseBroker

        return DatabaseBroker(backend.jobs_options, backend.alias)
    if backend.jobs_options.broker == "redis":
        from .fallback import RedisWithFallback
        from .redis import RedisBroker

        return RedisWithFallback(RedisBroker(backend.jobs_options, backend.alias))
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"Unknown broker {backend.jobs_options.broker!r}.")
