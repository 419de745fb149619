"""Beat: enqueue each schedule's due fire times, once, however many beats run.

Two database guards make a fire time enqueue once. A compare-and-set UPDATE of
``next_fire_at`` picks one beat per due schedule (the others update nothing and move on);
then a ``ScheduleFire`` row, unique per (schedule, fire time), is inserted in the same
transaction as the job, so even a stale write that rewinds ``next_fire_at`` cannot enqueue a
fire time twice. Beat never runs jobs: it enqueues through the backend and sleeps until the
next due time, waking at least every ``check_interval`` seconds to notice admin edits.
"""

import logging
import os
import signal
import threading
from datetime import datetime, timedelta

from django.db import DatabaseError, IntegrityError, InterfaceError, connections, transaction
from django.db.models import Min
from django.utils import timezone

from django_jobs import registry
from django_jobs.beat import rules
from django_jobs.beat.models import Schedule, ScheduleFire
from django_jobs.exceptions import InvalidSchedule, JobsError
from django_jobs.tasks_api import InvalidTask, task_backends

logger = logging.getLogger(__name__)

#: How long fire records are kept (they only guard against re-firing recent fire times).
FIRE_RETENTION = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=1)
#: Never spin: a schedule that stays due (its fire keeps failing) is retried at this pace.
MIN_SLEEP = 0.05
#: A pass where a schedule failed retries it after this long, not at once.
RETRY_SLEEP = 1.0


def fire(database: str, schedule: Schedule, now: datetime) -> list[str]:
    """Enqueue ``schedule``'s due fire times if this beat wins them; return the job ids."""
    error = ""
    try:
        times = schedule.due_fire_times(now)
        next_fire_at = schedule.timing().next_after(now)
    except (JobsError, ArithmeticError, LookupError, TypeError, ValueError) as e:
        # a row written around clean() (interval 0, a bad zone or cron): stop it and say why
        times, next_fire_at, error = [], None, f"{type(e).__name__}: {e}"
    with transaction.atomic(using=database):
        schedules = Schedule.objects.using(database)
        if not schedules.advance(schedule.pk, schedule.next_fire_at, next_fire_at):
            return []  # another beat fired it, or an operator changed it meanwhile
        fired = set(
            ScheduleFire.objects.using(database)
            .filter(schedule=schedule, fire_time__in=times)
            .values_list("fire_time", flat=True)
        )
        runs = [_enqueue(database, schedule, time) for time in times if time not in fired]
        changes: dict = {"last_error": runs[-1][2] if runs else error}
        if runs:
            changes.update(last_fired_at=times[-1], last_job_id=runs[-1][1])
        schedules.filter(pk=schedule.pk).update(**changes)
    for run in runs:  # once committed: a line says what happened, not what was tried
        _log(schedule, *run)
    return [job_id for _, job_id, _, _ in runs if job_id]


def _enqueue(database: str, schedule: Schedule, fire_time: datetime) -> tuple:
    """Enqueue one run and record its fire time in the caller's transaction.

    Returns (fire time, job id, error, queue): a run that could not be enqueued has no job id
    and an error; its fire time is recorded all the same (it is not tried again).
    """
    job_id, error, queue = None, "", None
    try:
        with transaction.atomic(using=database):  # a savepoint: a bad call spoils nothing else
            result = enqueue_now(schedule)
            job_id, queue = result.id, result.task.queue_name
    except (JobsError, InvalidTask, TypeError, ValueError) as e:
        error = f"{type(e).__name__}: {e}"
    ScheduleFire.objects.using(database).create(
        schedule=schedule, fire_time=fire_time, job_id=job_id
    )
    return fire_time, job_id, error, queue


def _log(schedule: Schedule, fire_time: datetime, job_id, error: str, queue) -> None:
    if job_id is None:
        logger.error(
            "schedule could not enqueue, fire time skipped schedule=%s fire_time=%s task=%s "
            "error=%r",
            schedule.name,
            fire_time.isoformat(),
            schedule.task,
            error,
        )
        return
    logger.info(
        "schedule fired schedule=%s fire_time=%s job_id=%s task=%s queue=%s",
        schedule.name,
        fire_time.isoformat(),
        job_id,
        schedule.task,
        queue,
    )


def enqueue_now(schedule: Schedule):
    """Enqueue one run of ``schedule``'s task with its arguments; return the TaskResult.

    Raises InvalidSchedule for a row that breaks the schedule rules (written before they
    existed, or around ``clean()``): nothing is enqueued for it.
    """
    found = rules.problems(schedule)
    if found:
        raise InvalidSchedule(
            "invalid schedule, not enqueued: "
            + "; ".join(f"{field}: {' '.join(messages)}" for field, messages in found.items())
        )
    task = registry.resolve(schedule.task).using(
        queue_name=schedule.queue_name or None,
        priority=schedule.priority,
        backend=schedule.backend,
    )
    return task.enqueue(*schedule.args, **schedule.kwargs)


class Beat:
    """Fire the due schedules of one backend; ``tick(now)`` is one pass of the loop."""

    def __init__(
        self,
        backend: str = "default",
        check_interval: float = 5.0,
        parent_pid: int | None = None,
        sync: bool = True,
    ):
        self.backend = task_backends[backend]
        self.alias = backend
        self.database = self.backend.jobs_options.database
        self.check_interval = check_interval
        self.parent_pid = parent_pid
        self.sync = sync
        self.stopping = threading.Event()
        self._pruned_at: datetime | None = None
        self.failed = False

    def start(self) -> None:
        """Load the task modules and sync the schedules declared in code."""
        from django_jobs.beat.sync import sync_declared

        registry.autodiscover(self.backend.jobs_options.task_modules)
        if self.sync:
            sync_declared(self.database, self.alias)
        logger.info("beat started backend=%s pid=%s", self.alias, os.getpid())

    def tick(self, now: datetime) -> datetime | None:
        """Fire every schedule due at ``now``; return the next due time (None: nothing)."""
        self.failed = False
        for schedule in Schedule.objects.using(self.database).due(self.alias, now):
            try:
                fire(self.database, schedule, now)
            except IntegrityError as e:  # a fire record already there: nothing was enqueued
                self.failed = True
                logger.warning("schedule fire skipped schedule=%s error=%r", schedule.name, e)
            except (DatabaseError, InterfaceError):
                raise
            except Exception:  # one broken schedule must not stop the others
                self.failed = True
                logger.exception("schedule fire failed schedule=%s", schedule.name)
        self._prune(now)
        enabled = Schedule.objects.using(self.database).enabled().filter(backend=self.alias)
        return enabled.aggregate(due=Min("next_fire_at"))["due"]

    def _prune(self, now: datetime) -> None:
        if self._pruned_at and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        old = ScheduleFire.objects.using(self.database).filter(fired_at__lt=now - FIRE_RETENTION)
        old.delete()

    def run(self) -> int:
        """Fire schedules until stopped; return the exit status."""
        self._install_signal_handlers()
        self.start()
        failures = 0
        while not self.stopping.is_set():
            now = timezone.now()
            try:
                due = self.tick(now)
                failures = 0
            except (DatabaseError, InterfaceError) as e:
                failures += 1
                connections[self.database].close()
                delay = min(0.5 * 2**failures, 10.0)
                logger.warning("beat tick failed error=%r; retrying in %.1fs", e, delay)
                self.stopping.wait(delay)
                continue
            self.stopping.wait(self.sleep_time(due))
            if self.parent_pid and os.getppid() != self.parent_pid:
                logger.warning("supervisor gone, stopping beat")
                self.stop()
        connections.close_all()
        logger.info("beat stopped backend=%s", self.alias)
        return 0

    def sleep_time(self, due: datetime | None) -> float:
        """Seconds until the next due time, at most ``check_interval`` (to see edits)."""
        if due is None:
            return self.check_interval
        seconds = (due - timezone.now()).total_seconds()
        floor = RETRY_SLEEP if self.failed else MIN_SLEEP
        return min(max(seconds, floor), self.check_interval)

    def stop(self) -> None:
        self.stopping.set()

    def _install_signal_handlers(self) -> None:
        def handle(signum, frame):
            logger.info("signal=%s stopping beat", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
