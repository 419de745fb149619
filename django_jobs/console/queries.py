"""What the operations dashboard shows, each figure from an indexed or bounded query.

Queue depths read the partial claim index (READY rows only), running jobs the lease index,
throughput the per-minute counters (plus a live count of the minutes not rolled up yet),
latencies a sample of the most recent successful jobs, and the table size the planner's
estimate on PostgreSQL and MySQL/MariaDB: nothing counts the whole history.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connections
from django.db.models import Count, Min, Q

from django_jobs.jobs import rollup
from django_jobs.jobs.models import Job, JobMinute, Queue, Worker
from django_jobs.jobs.status import JobStatus

LATENCY_SAMPLE = 1000
RUNNING_SHOWN = 50
COUNT_CAP = 1_000_000
BUCKETS = {
    "hour": (timedelta(hours=1), timedelta(minutes=1)),
    "day": (timedelta(days=1), timedelta(minutes=15)),
}


def queues(database: str, now: datetime, also: Iterable[str] = ()) -> list[dict]:
    """Per queue: ready and scheduled jobs, age of the oldest ready one, running, paused.

    Lists every queue with work, recent counters or a Queue row, and the names in ``also``.
    """
    rows: dict[str, dict] = {}

    def row(name: str) -> dict:
        blank = {"name": name, "ready": 0, "scheduled": 0, "oldest_ready_age": None}
        return rows.setdefault(name, {**blank, "running": 0, "paused": False})

    ready = (
        Job.objects.using(database)
        .filter(status=JobStatus.READY)
        .values("queue_name")
        .annotate(
            ready=Count("pk", filter=Q(run_after__lte=now)),
            scheduled=Count("pk", filter=Q(run_after__gt=now)),
            oldest=Min("run_after", filter=Q(run_after__lte=now)),
        )
        .order_by()
    )
    for r in ready:
        age = (now - r["oldest"]).total_seconds() if r["oldest"] else None
        row(r["queue_name"]).update(
            ready=r["ready"], scheduled=r["scheduled"], oldest_ready_age=age
        )
    running = (
        Job.objects.using(database).running().values_list("queue_name").annotate(n=Count("pk"))
    )
    for name, n in running.order_by():
        row(name)["running"] = n
    recent = (
        JobMinute.objects.using(database)
        .filter(minute__gte=now - rollup.BACKFILL)
        .exclude(queue_name="")
        .values_list("queue_name", flat=True)
        .distinct()
    )
    for name in [*recent, *also]:
        row(name)
    for name, paused in Queue.objects.using(database).values_list("name", "paused"):
        row(name)["paused"] = paused
    return sorted(rows.values(), key=lambda r: r["name"])


def recent_counts(database: str, now: datetime, rolled_until: datetime | None = None) -> dict:
    """Counts of the minutes not rolled up yet (a few minutes of the ``finished_at`` index)."""
    since = rolled_until or rollup.rolled_until(database)
    since = max(since or now - rollup.BACKFILL, now - rollup.BACKFILL)
    return rollup.finished_counts(database, since, now + rollup.MINUTE)


def throughput(database: str, now: datetime, recent: dict | None = None) -> dict:
    """Finished jobs per bucket over the last hour and day, and the failure rates."""
    since = rollup.floor_minute(now) - rollup.BACKFILL
    per_minute: dict[datetime, dict] = {
        m: {"succeeded": s, "failed": f, "cancelled": c}
        for m, s, f, c in JobMinute.objects.using(database)
        .filter(queue_name="", minute__gte=since)
        .values_list("minute", "succeeded", "failed", "cancelled")
    }
    if recent is None:
        recent = recent_counts(database, now)
    for (minute, _queue), fields in recent.items():
        into = per_minute.setdefault(minute, dict.fromkeys(fields, 0))
        for name, n in fields.items():
            into[name] += n
    return {name: _series(per_minute, now, *spec) for name, spec in BUCKETS.items()}


def _series(per_minute: dict, now: datetime, span: timedelta, step: timedelta) -> dict:
    step_minutes = int(step.total_seconds() // 60)
    end = rollup.floor_minute(now)
    end -= timedelta(minutes=end.minute % step_minutes)
    start = end - span + step
    points = []
    for i in range(int(span / step)):
        at = start + i * step
        point = {"t": at.isoformat(), "succeeded": 0, "failed": 0, "cancelled": 0}
        for m in range(step_minutes):
            for name, n in per_minute.get(at + timedelta(minutes=m), {}).items():
                point[name] += n
        points.append(point)
    done = sum(p["succeeded"] + p["failed"] for p in points)
    failed = sum(p["failed"] for p in points)
    return {
        "points": points,
        "step": int(step.total_seconds()),
        "finished": done,
        "failure_rate": failed / done if done else None,
    }


def latency(database: str, now: datetime) -> dict:
    """Percentiles of queue wait (ready → start) and run time, over recent successful jobs."""
    sample = list(
        Job.objects.using(database)
        .filter(status=JobStatus.SUCCESSFUL, finished_at__gte=now - timedelta(hours=1))
        .order_by("-finished_at")
        .values_list("run_after", "last_attempted_at", "finished_at")[:LATENCY_SAMPLE]
    )
    waits = [max((s - r).total_seconds(), 0.0) for r, s, _ in sample if s]
    runs = [max((f - s).total_seconds(), 0.0) for _, s, f in sample if s]
    return {"sample": len(sample), "wait": percentiles(waits), "run": percentiles(runs)}


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def at(q: float):
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else None

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0)}


def running_jobs(database: str, now: datetime) -> list[dict]:
    jobs = (
        Job.objects.using(database)
        .running()
        .order_by("last_attempted_at")
        .values("id", "task_path", "queue_name", "claimed_by", "attempts", "last_attempted_at")
    )[:RUNNING_SHOWN]
    return [_with_age(job, "last_attempted_at", "running_for", now) for job in jobs]


def _with_age(row: dict, field: str, name: str, now: datetime) -> dict:
    """``row`` with the datetime ``field`` replaced by its age in seconds under ``name``."""
    row = dict(row)
    row[name] = (now - row.pop(field)).total_seconds()
    row["id"] = str(row["id"])
    return row


def workers(database: str, now: datetime, stale_after: timedelta) -> list[dict]:
    """Workers that have not stopped, with heartbeat age and how many jobs each runs."""
    running = dict(
        Job.objects.using(database)
        .running()
        .values_list("claimed_by")
        .annotate(n=Count("pk"))
        .order_by()
    )
    rows = (
        Worker.objects.using(database)
        .filter(stopped_at__isnull=True)
        .order_by("-last_heartbeat_at")
        .values("id", "hostname", "pid", "queues", "concurrency", "last_heartbeat_at", "note")
    )[:100]
    return [
        {
            **_with_age(w, "last_heartbeat_at", "heartbeat_age", now),
            "stale": w["last_heartbeat_at"] < now - stale_after,
            "running": running.get(w["id"], 0),
        }
        for w in rows
    ]


def worker_counts(database: str, now: datetime, stale_after: timedelta) -> dict[str, int]:
    """Worker processes not stopped: live ones, and stale ones (silent for ``stale_after``)."""
    cutoff = now - stale_after
    return (
        Worker.objects.using(database)
        .filter(stopped_at__isnull=True)
        .aggregate(
            live=Count("pk", filter=Q(last_heartbeat_at__gte=cutoff)),
            stale=Count("pk", filter=Q(last_heartbeat_at__lt=cutoff)),
        )
    )


def planner_estimate(database: str) -> int | None:
    """The planner's row estimate of the job table (PostgreSQL, MySQL/MariaDB), if it has one."""
    connection = connections[database]
    table = Job._meta.db_table
    if connection.vendor == "postgresql":
        sql = "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass"
    elif connection.vendor == "mysql":
        sql = (
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
        )
    else:
        return None
    with connection.cursor() as cursor:
        cursor.execute(sql, [table])
        row = cursor.fetchone()
    value = row[0] if row else None
    return None if value is None or value < 0 else int(value)  # -1: never analysed


def estimated_total(database: str) -> dict:
    """Rows in the job table: the planner's estimate where there is one, else a capped count."""
    estimate = planner_estimate(database)
    if estimate is not None:
        return {"value": estimate, "estimated": True}
    counted = Job.objects.using(database).order_by()[: COUNT_CAP + 1].count()
    return {"value": min(counted, COUNT_CAP), "estimated": counted > COUNT_CAP}


def snapshot(database: str, now: datetime, stale_after: timedelta) -> dict:
    """Everything the dashboard shows, JSON-ready."""
    recent = recent_counts(database, now, rollup.rollup(database, now))
    return {
        "now": now.isoformat(),
        "queues": queues(database, now, also={queue for _, queue in recent}),
        "throughput": throughput(database, now, recent),
        "latency": latency(database, now),
        "running": running_jobs(database, now),
        "workers": workers(database, now, stale_after),
        "total": estimated_total(database),
    }
