"""Run jobs and fire schedules in the test's own thread, through the worker's real path.

A round claims what is due (``jobs.claims``, ``jobs.limits`` for jobs with limits), runs each
job with ``worker.execution.execute`` and records it with ``worker.outcomes.record``: the two
halves of ``worker.outcomes.run_attempt``, without its closing of the thread's connections
(inside a ``TestCase`` that would close the connection holding the test's transaction).
Rounds go on until nothing is due, so retries and workflow steps made READY run too.
"""

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import async_to_sync
from django.db import connections, transaction
from django.utils import timezone

from django_jobs.beat.loop import Beat
from django_jobs.beat.models import ScheduleFire
from django_jobs.jobs import claims, limits, operations
from django_jobs.jobs.models import Job
from django_jobs.tasks_api import DEFAULT_TASK_BACKEND_ALIAS, TaskResultStatus, task_backends
from django_jobs.testing.assertions import assert_enqueued, assert_not_enqueued, enqueued_jobs
from django_jobs.worker.execution import Attempt, execute
from django_jobs.worker.outcomes import record

#: The worker id jobs run by these helpers carry (``Job.claimed_by``, ``worker_ids``).
WORKER_ID = "django-jobs-testing"
#: Jobs claimed per round.
BATCH = 100
#: Rounds before ``run_jobs`` gives up (a task that enqueues itself forever).
MAX_ROUNDS = 100


class StillRunnable(AssertionError):
    """Jobs were still due after ``max_rounds`` rounds."""


@dataclass
class Run:
    """What ``run_jobs`` ran: every attempt, in order; its jobs by outcome, as they are now."""

    attempts: list[Attempt] = field(default_factory=list)

    def _with(self, outcome) -> list[Job]:
        """The jobs of the attempts that ended with ``outcome``, read again from the table."""
        attempts = [a for a in self.attempts if a.outcome == outcome]
        if not attempts:
            return []
        ids = [a.job.pk for a in attempts]
        rows = Job.objects.using(attempts[0].backend.database).in_bulk(ids)
        return [rows[pk] for pk in ids if pk in rows]

    @property
    def succeeded(self) -> list[Job]:
        return self._with(TaskResultStatus.SUCCESSFUL)

    @property
    def failed(self) -> list[Job]:
        """Attempts that ended their job FAILED (or CANCELLED)."""
        return self._with(TaskResultStatus.FAILED)

    @property
    def retried(self) -> list[Job]:
        """Attempts that put their job back in the queue (a retry or a snooze)."""
        return self._with(TaskResultStatus.READY)

    def __len__(self) -> int:
        return len(self.attempts)


def run_jobs(
    *,
    backend: str = DEFAULT_TASK_BACKEND_ALIAS,
    queues: Sequence[str] = (),
    now: datetime | None = None,
    wait_for_backoff: bool = False,
    max_rounds: int = MAX_ROUNDS,
    ids: Iterable = (),
) -> Run:
    """Run the due jobs of ``backend`` in this thread, round after round, until none is due.

    ``now``: the time jobs are due by (default: the clock at each round). A retried or snoozed
    job runs again at once unless ``wait_for_backoff``. ``ids``: jobs to run even if deferred.
    Raises ``StillRunnable`` when jobs are still due after ``max_rounds`` rounds.
    """
    jobs_backend = task_backends[backend]
    forced = {str(pk) for pk in ids}
    run = Run()
    for _ in range(max_rounds):
        claimed = _claim(jobs_backend, queues, now or timezone.now(), forced)
        if not claimed:
            return run
        for job in claimed:
            attempt = _run(Attempt(job, WORKER_ID, jobs_backend))
            run.attempts.append(attempt)
            forced.discard(str(job.pk))
            if attempt.outcome == TaskResultStatus.READY and not wait_for_backoff:
                forced.add(str(job.pk))
    raise StillRunnable(
        f"run_jobs: jobs were still due after {max_rounds} rounds ({len(run)} attempts); "
        "does a task enqueue itself, or snooze forever? Raise max_rounds if this is expected."
    )


def fire_schedules(
    now: datetime | None = None, *, backend: str = DEFAULT_TASK_BACKEND_ALIAS, sync: bool = True
) -> list[str]:
    """Fire the schedules due at ``now`` with one ``Beat.tick(now)``; return the job ids.

    ``sync``: first bring the table in line with ``JOBS_SCHEDULES``, as beat does at start.
    """
    beat = Beat(backend, sync=sync)
    beat.start()
    fires = ScheduleFire.objects.using(beat.database)
    last = fires.order_by("-pk").values_list("pk", flat=True).first() or 0
    beat.tick(now or timezone.now())
    fired = fires.filter(pk__gt=last, job_id__isnull=False).order_by("pk")
    return [str(pk) for pk in fired.values_list("job_id", flat=True)]


def run_schedules(
    now: datetime | None = None, *, backend: str = DEFAULT_TASK_BACKEND_ALIAS, **options
) -> Run:
    """Fire the schedules due at ``now``, then ``run_jobs`` (their jobs included)."""
    fired = fire_schedules(now, backend=backend, sync=options.pop("sync", True))
    return run_jobs(backend=backend, ids=fired, **options)


def _claim(jobs_backend, queues, now: datetime, forced: set[str]) -> list[Job]:
    database, alias = jobs_backend.database, jobs_backend.alias
    lease = jobs_backend.jobs_options.lease
    paused = operations.paused_queues(database)
    jobs = claims.claim_ready(database, alias, queues, paused, WORKER_ID, BATCH, now, lease)
    if len(jobs) < BATCH:
        gated, _ = limits.claim(
            database, alias, queues, paused, WORKER_ID, BATCH - len(jobs), now, lease
        )
        jobs += gated
    forced -= {str(job.pk) for job in jobs}
    if forced:
        # Not due yet (a retry's backoff, a deferred job): claimed as of their own run_after.
        waiting = Job.objects.using(database).filter(pk__in=forced)
        due = max([now, *waiting.values_list("run_after", flat=True)])
        jobs += claims.claim_ids(database, alias, list(forced), WORKER_ID, due, lease)
    return jobs


def _run(attempt: Attempt) -> Attempt:
    """``execute`` and ``record`` one attempt (``run_attempt`` minus the connection cleanup)."""
    record(execute(attempt, _call_in_savepoint(attempt.backend.database)))
    return attempt


def _call_in_savepoint(database: str):
    """Call tasks as the worker does; inside a transaction (a ``TestCase``) in a savepoint,
    so that a task's database error cannot break the test's transaction."""

    def call(task, args, kwargs):
        if not connections[database].in_atomic_block:
            return _call(task, args, kwargs)
        with transaction.atomic(using=database):
            return _call(task, args, kwargs)

    return call


def _call(task, args, kwargs):
    if inspect.iscoroutinefunction(task.func):
        # In this thread, so that the task's sync_to_async queries see the test's transaction.
        return async_to_sync(task.func)(*args, **kwargs)
    return task.func(*args, **kwargs)


class JobsTestMixin:
    """The helpers as ``TestCase`` methods: ``self.run_jobs()``, ``self.assertEnqueued(...)``."""

    def run_jobs(self, **options) -> Run:
        return run_jobs(**options)

    def run_schedules(self, now: datetime | None = None, **options) -> Run:
        return run_schedules(now, **options)

    def enqueued_jobs(self, task=None, **filters) -> list[Job]:
        return enqueued_jobs(task, **filters)

    def assertEnqueued(self, task, *args, **kwargs) -> Job:  # noqa: N802 (unittest style)
        return assert_enqueued(task, *args, **kwargs)

    def assertNotEnqueued(self, task) -> None:  # noqa: N802
        assert_not_enqueued(task)
