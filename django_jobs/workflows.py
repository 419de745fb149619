"""Workflows persisted in the database: chain, group and chord of task signatures.

``enqueue()`` writes every step at once (one Workflow row, one Job row per step, in one
transaction): steps with nothing to wait for are READY, the others BLOCKED, which no claim
ever sees. A BLOCKED step counts the steps it still waits for (``Job.waiting_on``). When a
step ends, in the same transaction as its outcome, ``advance`` decrements its dependents'
counters with one guarded UPDATE and turns the ones that reached zero READY, feeding them
their parents' results. The UPDATE locks the counters, so when siblings finish at once
exactly one of them sees zero: a chord's callback fires once. Jobs outside workflows never
come here (``Job.workflow_id`` is NULL). Failure policy: see ``docs/workflows.md``.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.utils import timezone

from django_jobs import instruments, tracing
from django_jobs.exceptions import InvalidTaskOptions
from django_jobs.jobs.inserts import insert_workflow
from django_jobs.signatures import check_call
from django_jobs.tasks_api import TaskResultStatus, task_backends


@dataclass(frozen=True)
class Signature:
    """A task with its arguments, not yet enqueued (``task.s(...)`` / ``task.si(...)``)."""

    task: object
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    #: Immutable signatures (``.si()``) ignore the previous step's result.
    immutable: bool = False

    def __repr__(self) -> str:
        mark = "si" if self.immutable else "s"
        return f"{self.task.name}.{mark}{tuple(self.args)!r}"

    def enqueue(self, on_failure: str = "stop") -> "WorkflowResult":
        return chain(self).enqueue(on_failure)


class Canvas:
    """chain, group or chord: something ``enqueue()`` turns into a Workflow."""

    def __init__(self, *steps):
        if len(steps) == 1 and isinstance(steps[0], list | tuple):
            steps = tuple(steps[0])
        for step in steps:
            if not isinstance(step, Signature | Canvas):
                raise TypeError(f"{step!r} is not a signature (task.s(...)) or a canvas.")
        self.steps = tuple(steps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.steps))})"

    def enqueue(self, on_failure: str = "stop") -> "WorkflowResult":
        """Write the whole workflow in one transaction; start the steps that wait for none."""
        return _Builder(self, on_failure).enqueue()


class chain(Canvas):  # noqa: N801 (Celery's name)
    """Run steps one after the other, each receiving the previous one's result."""


class group(Canvas):  # noqa: N801
    """Run steps in parallel; what follows gets the list of their results, in order."""


class chord(Canvas):  # noqa: N801
    """Run a group, then ``callback`` with the list of its results, once all succeeded."""

    def __init__(self, header, callback: Signature | Canvas):
        header = header if isinstance(header, group) else group(*header)
        super().__init__(header, callback)


class _Builder:
    """Compile a canvas into Job rows with ``depends_on``/``dependents`` edges."""

    def __init__(self, canvas: Canvas, on_failure: str):
        from django_jobs.jobs.models import FailurePolicy

        if on_failure not in FailurePolicy.values:
            raise InvalidTaskOptions(
                f'on_failure must be "stop" or "continue", not {on_failure!r}.'
            )
        self.canvas = canvas
        self.on_failure = on_failure
        self.jobs: list = []
        self.backend = None
        self.now = timezone.now()

    def enqueue(self) -> "WorkflowResult":
        from django_jobs.jobs.models import Workflow

        leaves, kind = self.build(self.canvas, [], "value")
        if not self.jobs:
            raise ValueError("an empty workflow")
        by_id = {str(job.pk): job for job in self.jobs}
        for job in self.jobs:
            job.dependents = []
        for job in self.jobs:
            for parent in job.depends_on:
                by_id[parent].dependents.append(str(job.pk))
        workflow = Workflow(
            backend=self.backend.alias,
            name=repr(self.canvas)[:255],
            on_failure=self.on_failure,
            steps=[str(job.pk) for job in self.jobs],
            leaves=leaves,
            returns_list=kind == "list",
            created_at=self.now,
        )
        database = self.backend.database
        with tracing.enqueue_span(self.jobs, "enqueue workflow"):
            ready = insert_workflow(database, workflow, self.jobs)
            self.backend.broker.publish(ready)
        instruments.jobs_enqueued(self.jobs)
        return WorkflowResult(workflow, database)

    def build(self, node, parents: list[str], kind: str) -> tuple[list[str], str]:
        """Add ``node``'s jobs after ``parents`` (whose results are one ``value`` or a
        ``list``); return the ids whose results come out of it, and their kind."""
        if isinstance(node, Signature):
            return [self.step(node, parents, kind)], "value"
        if isinstance(node, group):
            leaves: list[str] = []
            for member in node.steps:
                leaves += self.build(member, parents, kind)[0]
            return leaves, "list"
        for step in node.steps:  # chain, chord
            parents, kind = self.build(step, parents, kind)
        return parents, kind

    def step(self, signature: Signature, parents: list[str], kind: str) -> str:

        task = signature.task
        backend = task_backends[task.backend]
        if self.backend is None:
            self.backend = backend
        elif backend.database != self.backend.database:
            raise InvalidTaskOptions("every step of a workflow must use the same database.")
        feed = "" if signature.immutable or not parents else kind
        # A fed step gets its parents' result as its first argument when it starts.
        check_call(task, (None, *signature.args) if feed else signature.args, signature.kwargs)
        job = backend.build_job(task, signature.args, signature.kwargs, self.now, bind=False)
        job.unique_key = job.unique_until = None  # unique jobs do not apply inside workflows
        job.depends_on = list(parents)
        job.waiting_on = len(parents)
        job.feed = feed
        self.jobs.append(job)
        return str(job.pk)


class WorkflowResult:
    """A handle on an enqueued workflow: its status, its steps' results, its final value."""

    def __init__(self, workflow, database: str):
        self.workflow = workflow
        self.database = database

    @property
    def id(self) -> str:
        return str(self.workflow.pk)

    def _jobs(self) -> list:
        from django_jobs.jobs.models import Job

        jobs = Job.objects.using(self.database).filter(workflow_id=self.workflow.pk)
        by_id = {str(job.pk): job for job in jobs}
        return [by_id[pk] for pk in self.workflow.steps if pk in by_id]

    def results(self) -> list:
        """Every step's ``TaskResult``, in canvas order."""
        backend = task_backends[self.workflow.backend]
        return [backend.to_result(job) for job in self._jobs()]

    @property
    def status(self) -> TaskResultStatus:
        """RUNNING while steps remain, then SUCCESSFUL if every step succeeded, else FAILED."""
        return status_of([job.status for job in self._jobs()])

    @property
    def return_value(self):
        """The last step's result (a list of results when the workflow ends with a group)."""
        from django_jobs.jobs.models import Job

        values = dict(
            Job.objects.using(self.database)
            .filter(pk__in=self.workflow.leaves)
            .values_list("pk", "return_value")
        )
        values = [values.get(_uuid(pk)) for pk in self.workflow.leaves]
        return values if self.workflow.returns_list else values[0]


def _uuid(pk: str):
    import uuid

    return uuid.UUID(pk)


def status_of(statuses: Sequence[str]) -> TaskResultStatus:
    from django_jobs.jobs.status import FINISHED, JobStatus

    if any(status not in FINISHED for status in statuses):
        if any(status == JobStatus.RUNNING for status in statuses):
            return TaskResultStatus.RUNNING
        return TaskResultStatus.READY
    if all(status == JobStatus.SUCCESSFUL for status in statuses):
        return TaskResultStatus.SUCCESSFUL
    return TaskResultStatus.FAILED
