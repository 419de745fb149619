"""Run one claimed job: resolve its task, call it, record the outcome, apply the retry policy.

Every write is fenced by (worker, attempt): if the job's lease was lost and the job handed to
another worker, this attempt's outcome is dropped instead of overwriting the newer one.

Outcomes besides success and failure: ``Snooze`` (back to READY, attempt given back),
``Discard`` and cancellation (CANCELLED, never retried). An ``atomic`` task's success is
written inside the task's own transaction.
"""

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError, close_old_connections, connections, transaction
from django.utils import timezone

from django_jobs import registry, workflows
from django_jobs.context import JobContext
from django_jobs.exceptions import Discard, JobArgumentsError, JobCancelled, LeaseLost, Snooze
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import JobStatus, error_entry
from django_jobs.jsonargs import check_json
from django_jobs.tasks_api import TaskResultStatus, task_finished, task_started

logger = logging.getLogger(__name__)


@dataclass
class Attempt:
    """One claimed job in the hands of one worker."""

    job: Job
    worker_id: str
    backend: object
    task: object = None
    result: object = None
    outcome: str = field(default="", init=False)
    #: Set (by the worker's heartbeat) once the job's cancellation is requested.
    cancelled: threading.Event = field(default_factory=threading.Event, init=False)
    #: Workflow steps this attempt's outcome made READY (for the broker to publish).
    activated: list = field(default_factory=list, init=False)

    @property
    def held(self):
        """The job's row, as long as this attempt still owns it."""
        return (
            Job.objects.using(self.backend.database)
            .filter(pk=self.job.pk)
            .held_by(self.worker_id, self.job.attempts)
        )

    def prepare(self) -> None:
        """Resolve the task and check the row; raises for a row that must fail outright."""
        self.task = registry.resolve(self.job.task_path)
        if self.job.options:
            self.task = self.task.using(**self.job.options)
        if not isinstance(self.job.args, list) or not isinstance(self.job.kwargs, dict):
            raise JobArgumentsError(
                f"args must be a JSON list and kwargs a JSON object, got "
                f"{type(self.job.args).__name__} and {type(self.job.kwargs).__name__}."
            )
        self.result = self.backend.to_result(self.job, self.task)

    def call_args(self) -> tuple[list, dict]:
        args = list(self.job.args)
        if self.task.takes_context:
            context = JobContext(
                task_result=self.result,
                database=self.backend.database,
                cancel_event=self.cancelled,
            )
            args.insert(0, context)
        return args, self.job.kwargs

    def succeed(self, value, now: datetime | None = None) -> None:
        succeeded = lambda held: held.mark_succeeded(now or timezone.now(), value)  # noqa: E731
        if self._write(succeeded, final=TaskResultStatus.SUCCESSFUL):
            self.finish(TaskResultStatus.SUCCESSFUL, value)
        else:
            self.lost()

    def fail(self, exc: BaseException, now: datetime | None = None, retry: bool = True) -> None:
        """Record a failed attempt: back in the queue after a backoff, FAILED or CANCELLED."""
        now = now or timezone.now()
        if isinstance(exc, Snooze) and not self.cancelled.is_set():
            self.snooze(exc.seconds, now)
            return
        cls = type(exc)
        error = error_entry(
            f"{cls.__module__}.{cls.__qualname__}",
            "".join(traceback.format_exception(exc)),
            self.job.attempts,
            self.worker_id,
        )
        if self.cancelled.is_set() or isinstance(exc, JobCancelled | Discard):
            verdict, update = "cancelled", lambda held: held.mark_cancelled(now, error)
        elif (
            retry
            and self.task is not None
            and self.task.should_retry(exc, self.job.attempts, self.job.max_attempts)
        ):
            run_after = now + self.task.retry_delay(self.job.attempts)
            verdict, update = "retry", lambda held: held.retry_later(run_after, error)
        else:
            verdict, update = "failed", lambda held: held.mark_failed(now, error)
        final = {"cancelled": JobStatus.CANCELLED, "failed": JobStatus.FAILED}.get(verdict)
        if not self._write(update, final=final):
            self.lost()
            return
        if verdict == "retry":
            self.job.run_after = run_after  # the broker republishes it for that time
        logger.log(
            logging.ERROR if verdict == "failed" else logging.WARNING,
            "job %s job_id=%s task=%s attempt=%s/%s error=%s",
            verdict,
            self.job.pk,
            self.job.task_path,
            self.job.attempts,
            self.job.max_attempts,
            error["exception_class_path"],
        )
        self.job.errors = [*self.job.errors, error]
        if verdict == "retry":
            self.finish(TaskResultStatus.READY, None)
            return
        # Django's task_finished receiver logs the failure with sys.exc_info(): send it
        # while the task's exception is the one being handled, with the task's traceback.
        traceback_ = exc.__traceback__
        try:
            raise exc
        except BaseException:  # noqa: BLE001
            exc.__traceback__ = traceback_
            self.finish(TaskResultStatus.FAILED, None)

    def snooze(self, seconds: float, now: datetime) -> None:
        """Queue the job again ``seconds`` from now; the attempt does not count."""
        run_after = now + timedelta(seconds=seconds)
        if not self._write(lambda held: held.snooze(run_after)):
            self.lost()
            return
        self.job.run_after = run_after
        logger.info(
            "job snoozed job_id=%s task=%s seconds=%s", self.job.pk, self.job.task_path, seconds
        )
        self.finish(TaskResultStatus.READY, None)

    def _write(self, update, final: str | None = None) -> int:
        """Apply a fenced update, riding out a database restart for a few seconds.

        ``final``: the status a workflow step ends with; its next steps start in the same
        transaction.
        """
        for delay in (0.5, 1.0, 2.0, 4.0, None):
            try:
                if final and self.job.workflow_id:
                    return self.write_step(update, final)
                return update(self.held)
            except (DatabaseError, InterfaceError) as e:
                if delay is None:
                    raise
                logger.warning("writing outcome failed job_id=%s error=%r", self.job.pk, e)
                connections[self.backend.database].close()
                time.sleep(delay)
        return 0

    def write_step(self, update, status: str) -> int:
        """Write a workflow step's final outcome and advance its workflow, atomically."""
        database = self.backend.database
        with transaction.atomic(using=database):
            written = update(self.held)
            if written:
                self.activated = workflows.ended(database, [(self.job, status)])
        return written

    def finish(self, status, value) -> None:
        """Note the outcome and send Django's ``task_finished`` (unless it is a retry)."""
        self.outcome = status
        if self.result is None or status == TaskResultStatus.READY:
            return
        object.__setattr__(self.result, "status", status)
        object.__setattr__(self.result, "_return_value", value)
        if status != TaskResultStatus.READY:
            object.__setattr__(self.result, "finished_at", timezone.now())
        task_finished.send(type(self.backend), task_result=self.result)

    def lost(self) -> None:
        self.outcome = "LOST"
        logger.warning(
            "lease lost, outcome dropped job_id=%s attempt=%s worker=%s",
            self.job.pk,
            self.job.attempts,
            self.worker_id,
        )


@dataclass
class Outcome:
    """What one attempt produced, before it is written."""

    attempt: Attempt
    value: object = None
    error: BaseException | None = None
    retry: bool = True
    #: The success is already in the database (an atomic task wrote it in its transaction).
    written: bool = False


def execute(attempt: Attempt, call) -> Outcome:
    """Run a claimed job with ``call(task, args, kwargs)``; write nothing (see ``record``)."""
    try:
        attempt.prepare()
    except Exception as e:  # noqa: BLE001  (a bad row fails alone, never the worker)
        return Outcome(attempt, error=e, retry=False)
    task_started.send(type(attempt.backend), task_result=attempt.result)
    args, kwargs = attempt.call_args()
    atomic = getattr(attempt.task, "atomic", False)
    try:
        if atomic:
            value = call_atomic(attempt, call, args, kwargs)
        else:
            value = call(attempt.task, args, kwargs)
            check_json(value, "return value", TypeError)
    except BaseException as e:  # noqa: BLE001
        # SystemExit, KeyboardInterrupt, GeneratorExit… raised by the task's code are the
        # task's failure too (as in Django's backends). They cannot be the worker's own
        # stop: its signals are handled on the main thread, which never runs a task.
        return Outcome(attempt, error=e)
    return Outcome(attempt, value=value, written=atomic)


def call_atomic(attempt: Attempt, call, args, kwargs):
    """Call the task in a transaction on the jobs database that also writes its success.

    The task's writes and the job's SUCCESSFUL row commit together or not at all; a lost
    lease rolls the task's writes back too.
    """
    with transaction.atomic(using=attempt.backend.database):
        value = call(attempt.task, args, kwargs)
        check_json(value, "return value", TypeError)
        if not attempt.held.mark_succeeded(timezone.now(), value):
            raise LeaseLost(f"job {attempt.job.pk} attempt {attempt.job.attempts} lost its lease")
        if attempt.job.workflow_id:
            attempt.activated = workflows.ended(
                attempt.backend.database, [(attempt.job, JobStatus.SUCCESSFUL)]
            )
    return value


def record(outcome: Outcome, now: datetime | None = None) -> None:
    """Write one outcome (fenced), applying the retry policy to failures."""
    if outcome.error is not None:
        outcome.attempt.fail(outcome.error, now, retry=outcome.retry)
    elif outcome.written:
        outcome.attempt.finish(TaskResultStatus.SUCCESSFUL, outcome.value)
    else:
        outcome.attempt.succeed(outcome.value, now)


def run_attempt(attempt: Attempt, call) -> Attempt:
    """Run a claimed job and record what happened, in the calling thread."""
    try:
        record(execute(attempt, call))
        return attempt
    finally:
        close_old_connections()
