"""Per-minute job counts: finished jobs rolled up from the ``finished_at`` index.

Never written per job: the worker heartbeat (about once a minute) and the dashboard roll up
every complete minute since the last rolled one. Only minutes that ended ``LAG`` ago are
rolled up, so late commits (the completer's batches, clock skew between hosts) land before
their minute is counted; the dashboard counts the newer minutes live from the same index.
Concurrent rollups compute the same rows and insert them ignoring conflicts. Old counters
are deleted with the jobs' retention (``jobs.retention``, OPTIONS ``history_retention``).
"""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Max
from django.db.models.functions import TruncMinute

from django_jobs.jobs.models import Job, JobMinute
from django_jobs.jobs.status import FINISHED, JobStatus

MINUTE = timedelta(minutes=1)
LAG = 2 * MINUTE
#: The dashboard's widest window, and how far back a first rollup goes.
BACKFILL = timedelta(days=1)

FIELD = {
    JobStatus.SUCCESSFUL: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def rolled_until(database: str) -> datetime | None:
    """End of the last rolled-up minute (the total rows are the watermark)."""
    last = JobMinute.objects.using(database).filter(queue_name="").aggregate(m=Max("minute"))
    return None if last["m"] is None else last["m"] + MINUTE


def finished_counts(database: str, start: datetime, end: datetime) -> dict:
    """``{(minute, queue_name): {field: n}}`` for jobs that finished in ``[start, end)``."""
    rows = (
        Job.objects.using(database)
        .filter(status__in=FINISHED, finished_at__gte=start, finished_at__lt=end)
        .annotate(minute=TruncMinute("finished_at", tzinfo=UTC))
        .values_list("minute", "queue_name", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts: dict = defaultdict(lambda: dict.fromkeys(FIELD.values(), 0))
    for minute, queue, status, n in rows:
        counts[minute, queue][FIELD[status]] += n
    return counts


def rollup(database: str, now: datetime, limit: timedelta = BACKFILL) -> datetime:
    """Roll up complete minutes (at most ``limit`` of them); return the new watermark."""
    end = floor_minute(now - LAG)
    start = max(rolled_until(database) or end - BACKFILL, end - BACKFILL)
    end = min(end, start + limit)
    if start >= end:
        return start
    totals = {}
    minute = start
    while minute < end:
        totals[minute] = JobMinute(minute=minute, queue_name="")
        minute += MINUTE
    rows = list(totals.values())
    for (minute, queue), fields in finished_counts(database, start, end).items():
        rows.append(JobMinute(minute=minute, queue_name=queue, **fields))
        for name, n in fields.items():
            setattr(totals[minute], name, getattr(totals[minute], name) + n)
    JobMinute.objects.using(database).bulk_create(rows, batch_size=500, ignore_conflicts=True)
    return end
