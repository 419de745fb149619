"""What liveness and readiness probes ask: does the database answer, which workers heartbeat.

Read-only; used by ``jobs health`` and by ``jobs bench`` (which must not share its queue).
"""

from datetime import timedelta

from django.db import DatabaseError, connections
from django.utils import timezone

from django_jobs.jobs.models import Job, Worker


def database_problem(database: str) -> str:
    """Why ``database`` cannot serve jobs ("" when it answers and holds the job table)."""
    try:
        list(Job.objects.using(database).values_list("pk", flat=True)[:1])
    except DatabaseError as e:
        connections[database].close()
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return f"database {database!r} does not answer: {reason}"
    return ""


def recent_workers(
    database: str,
    within: timedelta,
    backend: str | None = None,
    queue: str | None = None,
    hostname: str | None = None,
) -> list[Worker]:
    """Running workers that heartbeated within ``within``; of ``backend``, serving ``queue``
    (a worker without queues serves them all), on ``hostname``, when given."""
    workers = Worker.objects.using(database).filter(
        stopped_at__isnull=True, last_heartbeat_at__gte=timezone.now() - within
    )
    if backend is not None:
        workers = workers.filter(backend=backend)
    if hostname is not None:
        workers = workers.filter(hostname=hostname)
    # JSON containment is not portable (SQLite): filter the few rows here.
    return [w for w in workers if queue is None or not w.queues or queue in w.queues]
