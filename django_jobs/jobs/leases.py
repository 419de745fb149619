"""Leases: renew the ones a live worker holds, rescue the ones a dead worker left behind."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q

from django_jobs.db.expressions import DatabaseNow
from django_jobs.exceptions import WorkerLost
from django_jobs.jobs import flows
from django_jobs.jobs.models import Job, Worker
from django_jobs.jobs.status import JobStatus, error_entry

logger = logging.getLogger(__name__)

LOST = f"{WorkerLost.__module__}.{WorkerLost.__qualname__}"


def renew(database: str, worker_id: str, now: datetime, lease: timedelta, job_ids) -> bool:
    """Record a heartbeat and push back the leases of the jobs this worker is running.

    Only ``job_ids`` (what the worker's threads really run) are renewed: a job whose outcome
    could not be written is left to expire and be rescued. Returns False when the worker's
    row is gone (pruned): it is no longer registered. The heartbeat and the new deadlines
    are the database's time: ``now`` (this host's) is not used, whatever the host's clock.
    """
    worker = Worker.objects.using(database).filter(pk=worker_id)
    registered = worker.update(last_heartbeat_at=DatabaseNow())
    if job_ids:
        Job.objects.using(database).held_by(worker_id).filter(pk__in=job_ids).renew_leases(lease)
    if not registered:
        logger.warning("worker row missing, not registered worker=%s", worker_id)
    return bool(registered)


def unclaim(database: str, worker_id: str, attempts: list[tuple]) -> int:
    """Give back jobs claimed ahead that never started: READY again, their claim undone.

    ``attempts``: ``(pk, attempt)`` pairs this worker holds; each is fenced by its attempt. A
    job whose cancellation was asked meanwhile ends CANCELLED.
    """
    if not attempts:
        return 0
    fence = Q()
    for pk, attempt in attempts:
        fence |= Q(pk=pk, attempts=attempt)
    return Job.objects.using(database).held_by(worker_id).filter(fence).unclaim()


def cancel_requested(database: str, worker_id: str, job_ids) -> list:
    """Which of ``job_ids`` (held by ``worker_id``) were asked to cancel: one query."""
    if not job_ids:
        return []
    held = Job.objects.using(database).held_by(worker_id).filter(pk__in=job_ids)
    return list(held.cancel_requested().values_list("pk", flat=True))


def rescue_expired(
    database: str,
    now: datetime,
    limit: int = 100,
    requeued: Callable[[list[Job]], None] | None = None,
) -> int:
    """Requeue (or fail, when out of attempts; or cancel, when asked) running jobs whose lease
    ran out.

    Safe when many workers do it at once: each row's update is fenced by its attempt and
    expired lease, so exactly one rescuer wins. ``requeued`` is handed the (unsaved) jobs put
    back in the queue, for the broker to publish. Whether a lease ran out is decided by the
    database's clock, and the rescue is dated by it too; ``now`` (this host's) is not used.
    """
    jobs = Job.objects.using(database)
    fields = (
        "pk", "attempts", "max_attempts", "claimed_by", "backend", "queue_name", "priority",
        "cancel_requested_at", "workflow_id", "limit_key", "task_path", "last_attempted_at",
        "db_now",
    )  # fmt: skip
    expired = jobs.expired().annotate(db_now=DatabaseNow()).values_list(*fields)[:limit]
    rescued = 0
    back = []
    for row in list(expired):
        *columns, db_now = row  # db_now: the rescue's time, by the database's clock
        (
            pk,
            attempts,
            max_attempts,
            worker_id,
            backend,
            queue,
            priority,
            cancel,
            flow,
            gate,
            task,
            started,
        ) = columns
        error = error_entry(
            LOST,
            f"{LOST}: worker {worker_id} stopped heartbeating; lease expired.\n",
            attempts,
            worker_id or "",
            started_at=started,
            finished_at=db_now,  # when the lease was found expired, not when the worker died
        )
        fenced = jobs.expired().filter(pk=pk, attempts=attempts)
        requeue = cancel is None and attempts < max_attempts
        with transaction.atomic(using=database):
            if cancel is not None:
                done = fenced.mark_cancelled(db_now, error)
            elif not requeue:
                done = fenced.mark_failed(db_now, error)
            else:
                done = fenced.retry_later(db_now, error)
            if done and flow and not requeue:  # a workflow step ended: advance its workflow
                status = JobStatus.CANCELLED if cancel is not None else JobStatus.FAILED
                back += flows.ended(database, [(Job(pk=pk), status)])
        if done:
            rescued += 1
            if requeue:
                back.append(
                    Job(
                        pk=pk,
                        backend=backend,
                        queue_name=queue,
                        priority=priority,
                        run_after=db_now,
                        limit_key=gate,  # a limited job stays on the gated claim path
                    )
                )
            logger.warning(
                "rescued job_id=%s task=%s queue=%s attempt=%s worker=%s requeued=%s",
                pk,
                task,
                queue,
                attempts,
                worker_id,
                requeue,
            )
    if back and requeued is not None:
        requeued(back)
    return rescued
