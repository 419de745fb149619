"""What the page of one task shows: its throughput, failure rate, latencies, limits, schedules.

The per-minute counters (``JobMinute``) are per queue, not per task, so a task's figures come
from the ``(status, finished_at)`` index over the last day: one count of the finished jobs of the
day (the hour's counted by the same statement), one sample of the task's most recent successful
jobs for the percentiles, each bounded by the window (and the sample by a LIMIT).
"""

from datetime import datetime, timedelta

from django.db.models import Count, Q

from django_jobs import registry
from django_jobs.beat.models import Schedule
from django_jobs.console.queries import LATENCY_SAMPLE, percentiles
from django_jobs.exceptions import UnknownTask
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import FINISHED, JobStatus

SPANS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
RECENT_FAILURES = 10
#: The task's options shown under "limits and defaults", in this order.
OPTIONS = (
    "queue_name",
    "priority",
    "max_attempts",
    "timeout",
    "concurrency_limit",
    "rate_limit",
    "limit_key",
)


def throughput(database: str, now: datetime, path: str) -> dict:
    """Per span: finished jobs, per minute, and the failure rate (failed / succeeded+failed)."""
    hour = Q(finished_at__gte=now - SPANS["hour"])
    counts = (
        Job.objects.using(database)
        .filter(status__in=FINISHED, finished_at__gte=now - SPANS["day"], task_path=path)
        .aggregate(
            **{
                f"{span}_{status}": Count("pk", filter=Q(status=status) & extra)
                for span, extra in (("day", Q()), ("hour", hour))
                for status in FINISHED
            }
        )
    )
    result = {}
    for span, length in SPANS.items():
        ok, ko, cx = (counts[f"{span}_{status}"] for status in FINISHED)
        done = ok + ko
        result[span] = {
            "succeeded": ok,
            "failed": ko,
            "cancelled": cx,
            "per_minute": (ok + ko + cx) / (length.total_seconds() / 60),
            "failure_rate": ko / done if done else None,
        }
    return result


def latency(database: str, now: datetime, path: str) -> dict:
    """Per span: percentiles of queue wait and run time, over the task's recent successes."""
    sample = list(
        Job.objects.using(database)
        .filter(status=JobStatus.SUCCESSFUL, finished_at__gte=now - SPANS["day"], task_path=path)
        .order_by("-finished_at")
        .values_list("run_after", "last_attempted_at", "finished_at")[:LATENCY_SAMPLE]
    )
    result = {}
    for span, length in SPANS.items():
        rows = [r for r in sample if r[2] >= now - length and r[1]]
        result[span] = {
            "sample": len(rows),
            "wait": percentiles([max((s - r).total_seconds(), 0.0) for r, s, _ in rows]),
            "run": percentiles([max((f - s).total_seconds(), 0.0) for _, s, f in rows]),
        }
    return result


def recent_failures(database: str, now: datetime, path: str) -> list[dict]:
    """The task's most recent failed jobs of the last day, newest first."""
    return list(
        Job.objects.using(database)
        .filter(status=JobStatus.FAILED, finished_at__gte=now - SPANS["day"], task_path=path)
        .order_by("-finished_at")
        .values("pk", "finished_at", "attempts", "queue_name")[:RECENT_FAILURES]
    )


def schedules(database: str, path: str) -> list[Schedule]:
    return list(Schedule.objects.using(database).filter(task=path).order_by("name"))


def options(path: str) -> dict | None:
    """The declared task's defaults and limits, or None when no such task is declared."""
    try:
        task = registry.resolve(path)
    except UnknownTask:
        return None
    return {name: getattr(task, name, None) for name in OPTIONS}
