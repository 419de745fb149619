"""Operator actions shared by the ``jobs`` command and the admin: retry, cancel, delete,
purge, pause and resume queues.

The ``*_jobs`` functions take any queryset of jobs (the admin's selection or its whole
filtered changelist) and act on it with one bulk statement, never one save per row.
"""

from collections.abc import Iterable
from datetime import timedelta
from typing import NamedTuple

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from django_jobs.jobs import flows
from django_jobs.jobs.models import Job, JobQuerySet, Queue, Worker
from django_jobs.jobs.status import FINISHED, JobStatus


def jobs_for(database: str, ids: Iterable[str] | None = None):
    jobs = Job.objects.using(database)
    return jobs if ids is None else jobs.filter(pk__in=list(ids))


def retry_jobs(jobs: JobQuerySet) -> int:
    """Queue the failed or cancelled jobs among ``jobs`` again, with a fresh attempt budget."""
    return jobs.retry(timezone.now())


class Cancelled(NamedTuple):
    """What a cancel did: jobs ended at once, and running jobs asked to stop."""

    cancelled: int
    asked_to_stop: int


def cancel_or_stop(jobs: JobQuerySet) -> Cancelled:
    """Cancel READY (or BLOCKED) jobs; ask RUNNING ones to stop (their worker notices at its
    heartbeat). Cancelled workflow steps apply their workflow's failure policy."""
    now = timezone.now()
    waiting = (JobStatus.READY, JobStatus.BLOCKED)
    steps = list(
        jobs.filter(status__in=waiting, workflow__isnull=False).values_list("pk", flat=True)
    )
    if not steps:
        return Cancelled(jobs.cancel(now), jobs.request_cancel(now))
    with transaction.atomic(using=jobs.db):
        cancelled = jobs.cancel(now)
        ended = jobs.model.objects.using(jobs.db).filter(pk__in=steps, status=JobStatus.CANCELLED)
        ended = [(job, JobStatus.CANCELLED) for job in ended.only("pk")]
        activated = flows.ended(jobs.db, ended)
    if activated:
        _publish(activated)
    return Cancelled(cancelled, jobs.request_cancel(now))


def cancel_jobs(jobs: JobQuerySet) -> int:
    """Cancel READY (or BLOCKED) jobs and ask RUNNING ones to stop; return how many of both."""
    return sum(cancel_or_stop(jobs))


def _publish(jobs) -> None:
    from django_jobs.tasks_api import task_backends

    for job in jobs:
        task_backends[job.backend].broker.publish([job])


def delete_jobs(jobs: JobQuerySet) -> int:
    """Delete the jobs among ``jobs`` that are not running (a running job's worker owns it)."""
    deleted, _ = jobs.exclude(status=JobStatus.RUNNING).delete()
    return deleted


def retry(database: str, ids: Iterable[str]) -> int:
    """Queue failed or cancelled jobs again, each with a fresh attempt budget."""
    return retry_jobs(jobs_for(database, ids))


def cancel(database: str, ids: Iterable[str]) -> int:
    """Cancel READY jobs; ask RUNNING ones to stop."""
    return cancel_jobs(jobs_for(database, ids))


def pause_queue(database: str, name: str) -> None:
    """Stop workers claiming from queue ``name`` (within one heartbeat interval)."""
    Queue.objects.using(database).update_or_create(name=name, defaults={"paused": True})


def resume_queue(database: str, name: str) -> int:
    """Let workers claim from queue ``name`` again; return 1 if it was paused, else 0."""
    return Queue.objects.using(database).filter(name=name, paused=True).update(paused=False)


def paused_queues(database: str) -> frozenset[str]:
    return frozenset(
        Queue.objects.using(database).filter(paused=True).values_list("name", flat=True)
    )


def purgeable(database: str, older_than: timedelta, statuses=FINISHED):
    """The finished jobs that finished more than ``older_than`` ago (what purge deletes)."""
    cutoff = timezone.now() - older_than
    return jobs_for(database).filter(status__in=statuses, finished_at__lt=cutoff)


def purge(database: str, older_than: timedelta, statuses=FINISHED) -> int:
    """Delete finished jobs that finished more than ``older_than`` ago."""
    deleted, _ = purgeable(database, older_than, statuses).delete()
    return deleted


def silent_workers(database: str, older_than: timedelta):
    """Worker rows that stopped (or stopped heartbeating) more than ``older_than`` ago."""
    cutoff = timezone.now() - older_than
    return Worker.objects.using(database).filter(last_heartbeat_at__lt=cutoff)


def prune_workers(database: str, older_than: timedelta) -> int:
    """Delete Worker rows that stopped (or stopped heartbeating) more than ``older_than`` ago."""
    deleted, _ = silent_workers(database, older_than).delete()
    return deleted


def stats(database: str) -> dict:
    """Job counts per queue and status, and live workers."""
    rows = (
        jobs_for(database)
        .values_list("queue_name", "status")
        .annotate(n=Count("pk"))
        .order_by("queue_name", "status")
    )
    queues: dict[str, dict[str, int]] = {}
    for queue, status, n in rows:
        queues.setdefault(queue, dict.fromkeys(JobStatus.values, 0))[status] = n
    live = Worker.objects.using(database).filter(stopped_at__isnull=True).count()
    return {"queues": queues, "live_workers": live}
