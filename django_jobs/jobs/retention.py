"""Retention: delete finished jobs older than their status's retention, a batch at a time.

Each batch reads at most ``BATCH`` primary keys from the ``(status, finished_at)`` index and
deletes those rows by key in its own statement, so no DELETE holds locks for long and the
claim never waits behind one. Workers prune a few batches per pass (``BATCHES``) from their
heartbeat; ``manage.py jobs prune`` runs batches until nothing is left.

Kept whatever their age: the steps of a workflow that still has a step to run (the next
steps read their parents' results), and jobs still inside their unique key's ``unique_for``
window (deleting one would let a duplicate in early). A workflow whose steps are all gone is
deleted too. The dashboard's per-minute counters have a retention of their own.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q

from django_jobs.jobs.models import Job, JobMinute, Workflow
from django_jobs.jobs.status import FINISHED, JobStatus

#: Rows one statement deletes at most.
BATCH = 1000
#: Batches one pass of a worker deletes at most; what is left waits for its next pass.
BATCHES = 5
UNFINISHED = (JobStatus.READY, JobStatus.RUNNING, JobStatus.BLOCKED)


def prunable(database: str, status: str, cutoff: datetime, now: datetime):
    """The jobs of ``status`` that finished before ``cutoff`` and may be deleted."""
    jobs = Job.objects.using(database)
    unfinished_step = jobs.filter(workflow_id=OuterRef("workflow_id"), status__in=UNFINISHED)
    return (
        jobs.filter(status=status, finished_at__lt=cutoff)
        .filter(Q(workflow_id__isnull=True) | ~Exists(unfinished_step))
        .exclude(unique_until__gt=now)
    )


def stepless_workflows(database: str):
    """Workflows none of whose steps are left."""
    steps = Job.objects.using(database).filter(workflow_id=OuterRef("pk"))
    return Workflow.objects.using(database).filter(~Exists(steps))


def old_minutes(database: str, now: datetime, keep: timedelta | None):
    """Per-minute counters older than ``keep`` (none when ``keep`` is None)."""
    minutes = JobMinute.objects.using(database)
    return minutes.none() if keep is None else minutes.filter(minute__lt=now - keep)


def pending(
    database: str, now: datetime, retention: Mapping, history: timedelta | None
) -> dict[str, int]:
    """What ``prune`` would delete: counts per status, workflows and counter rows."""
    counts = {
        status: prunable(database, status, now - keep, now).count()
        for status, keep in _periods(retention)
    }
    counts["workflows"] = stepless_workflows(database).count()
    counts["minutes"] = old_minutes(database, now, history).count()
    return counts


def prune(
    database: str,
    now: datetime,
    retention: Mapping,
    history: timedelta | None,
    batch: int = BATCH,
    batches: int | None = BATCHES,
) -> dict[str, int]:
    """Delete at most ``batches`` batches of ``batch`` rows (None: until nothing is left);
    return how many rows went, per status, workflows and counter rows."""
    budget = [batches]
    deleted = {}
    for status, keep in _periods(retention):
        cutoff = now - keep
        guard = Job.objects.using(database).filter(status=status, finished_at__lt=cutoff)
        deleted[status] = _in_batches(
            prunable(database, status, cutoff, now).order_by("finished_at"), guard, batch, budget
        )
    workflows = stepless_workflows(database)
    deleted["workflows"] = _in_batches(workflows, workflows, batch, budget)
    minutes = old_minutes(database, now, history)
    deleted["minutes"] = _in_batches(minutes, minutes, batch, budget)
    return deleted


def _periods(retention: Mapping) -> list[tuple[str, timedelta]]:
    """The finished statuses with a retention period (None: kept forever)."""
    return [(s, retention[s]) for s in FINISHED if retention.get(s) is not None]


def _in_batches(candidates, guard, batch: int, budget: list) -> int:
    """Delete ``candidates`` by primary key, ``batch`` at a time, while ``budget[0]`` (a
    shared count of batches; None: no limit) lasts. ``guard`` re-checks each row as it goes:
    a job retried since it was read is not deleted."""
    total = 0
    while budget[0] is None or budget[0] > 0:
        pks = list(candidates.values_list("pk", flat=True)[:batch])
        if not pks:
            break
        if budget[0] is not None:
            budget[0] -= 1
        deleted, _ = guard.filter(pk__in=pks).delete()
        total += deleted
        if len(pks) < batch or not deleted:  # the last batch, or another pruner's
            break
    return total
