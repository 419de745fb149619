"""Run one claimed job: resolve its task, call it, and return what happened (an ``Outcome``).

Nothing is written here (``outcomes`` records what ran), with one exception: an ``atomic``
task's success is written inside the task's own transaction, through the same transition.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from django_jobs import registry, tracing
from django_jobs.context import JobContext
from django_jobs.exceptions import JobArgumentsError, LeaseLost
from django_jobs.jobs import flows
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import JobStatus
from django_jobs.jsonargs import check_json
from django_jobs.logs import job_fields
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
            "lease lost, outcome dropped %s worker=%s", job_fields(self.job), self.worker_id
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
    #: How long the task ran (None: it never started, e.g. its task could not be resolved).
    seconds: float | None = None


def execute(attempt: Attempt, call) -> Outcome:
    """Run a claimed job with ``call(task, args, kwargs)``; write nothing (``outcomes`` does)."""
    if not tracing.traces(attempt.job):
        return _execute(attempt, call)
    with tracing.attempt_span(attempt.job, attempt.worker_id):
        outcome = _execute(attempt, call)
        tracing.end_attempt(outcome.error, attempt.cancelled.is_set())
    return outcome


def _execute(attempt: Attempt, call) -> Outcome:
    try:
        attempt.prepare()
    except Exception as e:  # noqa: BLE001  (a bad row fails alone, never the worker)
        return Outcome(attempt, error=e, retry=False)
    task_started.send(type(attempt.backend), task_result=attempt.result)
    args, kwargs = attempt.call_args()
    atomic = getattr(attempt.task, "atomic", False)
    begun = time.monotonic()
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
        return Outcome(attempt, error=e, seconds=time.monotonic() - begun)
    return Outcome(attempt, value=value, written=atomic, seconds=time.monotonic() - begun)


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
            attempt.activated = flows.ended(
                attempt.backend.database, [(attempt.job, JobStatus.SUCCESSFUL)]
            )
    return value
