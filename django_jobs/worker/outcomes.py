"""Record what attempts produced: the one path from an ``Outcome`` to the job transitions.

The worker's completer thread calls ``record_many`` with each batch; the tests call it too
(``run_attempt``). Successes are written in one statement per batch, failures one by one after
the retry policy chose their verdict: back in the queue after a backoff, FAILED, CANCELLED, or
snoozed. Every write is fenced by (worker, attempt): an attempt whose lease was lost, its job
handed to another worker, has its outcome dropped instead of overwriting the newer one. A
workflow step's final outcome and the start of its next steps commit together.
"""

import logging
import traceback
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta

from django.db import close_old_connections, transaction
from django.utils import timezone

from django_jobs import instruments
from django_jobs.exceptions import Discard, JobCancelled, Snooze
from django_jobs.jobs import flows, transitions
from django_jobs.jobs.status import JobStatus, error_entry
from django_jobs.logs import job_fields
from django_jobs.tasks_api import TaskResultStatus
from django_jobs.worker.execution import Attempt, Outcome, execute

logger = logging.getLogger(__name__)


def record_many(outcomes: Sequence[Outcome], database: str, now: datetime) -> None:
    """Record a batch of outcomes; an outcome already recorded (a retried batch) is skipped."""
    pending = [o for o in outcomes if not o.attempt.outcome]
    successes = [o for o in pending if o.error is None and not o.written]
    if successes:
        _record_successes(successes, database, now)
        for outcome in successes:
            lost = outcome.attempt.outcome == "LOST"
            _count(outcome, "lost" if lost else "successful")
    for outcome in pending:
        if outcome.error is not None:
            _count(outcome, _record_failure(outcome, database, now))
        elif outcome.written:
            outcome.attempt.finish(TaskResultStatus.SUCCESSFUL, outcome.value)
            _count(outcome, "successful")


def _count(outcome: Outcome, verdict: str) -> None:
    instruments.job_finished(outcome.attempt.job, verdict, outcome.seconds)


def record(outcome: Outcome, now: datetime | None = None) -> None:
    """Record one outcome."""
    record_many([outcome], outcome.attempt.backend.database, now or timezone.now())


def run_attempt(attempt: Attempt, call) -> Attempt:
    """Run a claimed job and record what happened, in the calling thread."""
    try:
        record(execute(attempt, call))
        return attempt
    finally:
        close_old_connections()


def _record_successes(successes: Sequence[Outcome], database: str, now: datetime) -> None:
    done = [
        (o.attempt.job.pk, o.attempt.worker_id, o.attempt.job.attempts, o.value) for o in successes
    ]
    steps = [o for o in successes if o.attempt.job.workflow_id]
    # Workflow steps: their next steps start in the same transaction (see ``jobs.flows``).
    with transaction.atomic(using=database) if steps else nullcontext():
        prepare = successes[0].attempt.backend.jobs_options.listen
        written = transitions.succeed_many(database, done, now, prepare)
        for outcome in steps:
            if outcome.attempt.job.pk in written:
                outcome.attempt.activated = flows.ended(
                    database, [(outcome.attempt.job, JobStatus.SUCCESSFUL)]
                )
    for outcome in successes:
        if outcome.attempt.job.pk in written:
            outcome.attempt.finish(TaskResultStatus.SUCCESSFUL, outcome.value)
        else:
            outcome.attempt.lost()


def _record_failure(outcome: Outcome, database: str, now: datetime) -> str:
    """Apply the retry policy: back in the queue after a backoff, FAILED or CANCELLED.

    Return the verdict: retried, failed, cancelled, snoozed, or lost (the lease was).
    """
    attempt, exc = outcome.attempt, outcome.error
    if isinstance(exc, Snooze) and not attempt.cancelled.is_set():
        return _snooze(attempt, exc.seconds, now)
    cls = type(exc)
    error = error_entry(
        f"{cls.__module__}.{cls.__qualname__}",
        "".join(traceback.format_exception(exc)),
        attempt.job.attempts,
        attempt.worker_id,
        started_at=attempt.job.last_attempted_at,  # the claimed row: this attempt's start
        finished_at=now,
    )
    task, job = attempt.task, attempt.job
    if attempt.cancelled.is_set() or isinstance(exc, JobCancelled | Discard):
        verdict, write = "cancelled", lambda held: held.mark_cancelled(now, error)
    elif (
        outcome.retry
        and task is not None
        and task.should_retry(exc, job.attempts, job.max_attempts)
    ):
        run_after = now + task.retry_delay(job.attempts)
        verdict, write = "retry", lambda held: held.retry_later(run_after, error)
    else:
        verdict, write = "failed", lambda held: held.mark_failed(now, error)
    final = {"cancelled": JobStatus.CANCELLED, "failed": JobStatus.FAILED}.get(verdict)
    if not _write(attempt, database, write, final):
        attempt.lost()
        return "lost"
    if verdict == "retry":
        job.run_after = run_after  # the broker republishes it for that time
    logger.log(
        logging.ERROR if verdict == "failed" else logging.WARNING,
        "job %s %s max_attempts=%s error=%s",
        verdict,
        job_fields(job),
        job.max_attempts,
        error["exception_class_path"],
    )
    job.errors = [*job.errors, error]
    if verdict == "retry":
        attempt.finish(TaskResultStatus.READY, None)
        return "retried"
    # Django's task_finished receiver logs the failure with sys.exc_info(): send it while the
    # task's exception is the one being handled, with the task's traceback.
    traceback_ = exc.__traceback__
    try:
        raise exc
    except BaseException:  # noqa: BLE001
        exc.__traceback__ = traceback_
        attempt.finish(TaskResultStatus.FAILED, None)
    return verdict


def _snooze(attempt: Attempt, seconds: float, now: datetime) -> str:
    """Queue the job again ``seconds`` from now; the attempt does not count."""
    run_after = now + timedelta(seconds=seconds)
    if not _write(attempt, attempt.backend.database, lambda held: held.snooze(run_after)):
        attempt.lost()
        return "lost"
    attempt.job.run_after = run_after
    logger.info("job snoozed %s seconds=%s", job_fields(attempt.job), seconds)
    attempt.finish(TaskResultStatus.READY, None)
    return "snoozed"


def _write(attempt: Attempt, database: str, write, final: str | None = None) -> int:
    """Apply a fenced transition to the attempt's row.

    ``final``: the status a workflow step ends with; its next steps start in the same
    transaction. Database errors go up to the caller (the completer retries transient ones).
    """
    if not (final and attempt.job.workflow_id):
        return write(attempt.held)
    with transaction.atomic(using=database):
        written = write(attempt.held)
        if written:
            attempt.activated = flows.ended(database, [(attempt.job, final)])
    return written
