"""The rows of the job table and what the claim and the rescue read beside it: jobs, workers,
paused queues, limit gates, workflows, and per-minute counts of finished jobs.

``Job.status`` is written only by the verbs of ``jobs.transitions`` (the queryset's base class).
"""

import uuid
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q

from django_jobs.db.expressions import DatabaseNow
from django_jobs.db.indexes import PartialIndex
from django_jobs.jobs.status import FINISHED, JobStatus
from django_jobs.jobs.transitions import JobTransitions


class JobQuerySet(JobTransitions):
    """The states of jobs (adjectives); the transitions (verbs) are in ``transitions``."""

    def ready(self, now: datetime):
        return self.filter(status=JobStatus.READY, run_after__lte=now)

    def claimable(self, backend: str, now: datetime, gated: bool = False):
        """READY jobs of ``backend`` due by ``now``: those without limits (the ordinary
        claim, on its partial indexes) or, with ``gated``, those with (``limits``)."""
        return self.ready(now).filter(backend=backend, limit_key__isnull=not gated)

    def running(self):
        return self.filter(status=JobStatus.RUNNING)

    def finished(self):
        return self.filter(status__in=FINISHED)

    def expired(self):
        """Running jobs whose lease ran out (by the database's clock): their worker is gone."""
        return self.filter(status=JobStatus.RUNNING, lease_expires_at__lt=DatabaseNow())

    def held_by(self, worker_id: str, attempt: int | None = None):
        """The job rows a worker still owns (the completion fence)."""
        qs = self.filter(status=JobStatus.RUNNING, claimed_by=worker_id)
        return qs if attempt is None else qs.filter(attempts=attempt)

    def cancel_requested(self):
        return self.filter(cancel_requested_at__isnull=False)

    def release_key(self, states, now: datetime) -> int:
        """Free the unique keys of jobs that no longer hold them: out of ``states``, window over."""
        return (
            self.exclude(status__in=states)
            .filter(Q(unique_until__isnull=True) | Q(unique_until__lte=now))
            .update(unique_key=None)
        )


class Job(models.Model):
    """One enqueued call of a task, and its outcome."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    backend = models.CharField(max_length=100, default="default")
    queue_name = models.CharField(max_length=100, default="default")
    priority = models.IntegerField(default=0)
    task_path = models.CharField(max_length=255)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    options = models.JSONField(
        default=dict, blank=True, help_text="Per-job task options (retry backoff…)."
    )
    status = models.CharField(max_length=12, choices=JobStatus, default=JobStatus.READY)
    run_after = models.DateTimeField(help_text="Earliest time the job may start.")
    enqueued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds per attempt.")
    return_value = models.JSONField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    worker_ids = models.JSONField(default=list, blank=True)
    claimed_by = models.CharField(max_length=64, null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    progress = models.JSONField(null=True, blank=True)
    # NULLs never collide, so this plain unique index holds only the keys of unique jobs.
    unique_key = models.CharField(
        max_length=64, null=True, blank=True, unique=True, help_text="Held unique key (hash)."
    )
    unique_until = models.DateTimeField(
        null=True, blank=True, help_text="The unique key is held at least until then."
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Flow control: set only on jobs of tasks with a concurrency or rate limit.
    limit_key = models.CharField(
        max_length=255, null=True, blank=True, help_text="Gate (concurrency/rate limit) key."
    )
    # Workflows: set only on jobs that are steps of a chain, group or chord.
    workflow = models.ForeignKey(
        "django_jobs.Workflow",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    # Nullable or with a database default: rows inserted without them (older code during a
    # rolling deploy, raw SQL) stay valid.
    depends_on = models.JSONField(
        null=True, blank=True, help_text="Ids of the steps this one waits for, in order."
    )
    dependents = models.JSONField(
        null=True, blank=True, help_text="Ids of the steps waiting for this one."
    )
    waiting_on = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Steps this one still waits for (BLOCKED until 0)."
    )
    feed = models.CharField(
        max_length=5,
        blank=True,
        default="",
        db_default="",
        help_text='"value": first argument is the previous step\'s result; "list": all results.',
    )
    # OpenTelemetry: the context of the enqueue span (``traceparent``…), the parent of each
    # attempt's span (``django_jobs.tracing``). Set only when tracing is configured.
    trace_context = models.JSONField(
        null=True, blank=True, help_text="Trace context of the enqueue (W3C traceparent)."
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        db_table = "django_jobs_job"
        indexes = [
            # The claim scans only READY rows: its cost stays flat however long the history.
            PartialIndex(
                fields=["status", "backend", "queue_name", "-priority", "run_after"],
                where=Q(status="READY", limit_key__isnull=True),
                name="django_jobs_job_claim",
            ),
            PartialIndex(  # workers serving every queue
                fields=["status", "backend", "-priority", "run_after"],
                where=Q(status="READY", limit_key__isnull=True),
                name="django_jobs_job_claim_any",
            ),
            PartialIndex(
                fields=["status", "lease_expires_at"],
                where=Q(status="RUNNING"),
                name="django_jobs_job_lease",
            ),
            # Gated jobs (concurrency/rate limits): READY keys to claim, RUNNING ones per key.
            PartialIndex(
                fields=["status", "limit_key"],
                where=Q(limit_key__isnull=False),
                name="django_jobs_job_gated",
            ),
            models.Index(fields=["status", "finished_at"], name="django_jobs_job_finished"),
            # The admin's changelist pages newest first.
            models.Index(fields=["enqueued_at"], name="django_jobs_job_enqueued"),
        ]
        permissions = [
            ("retry_job", "Can retry jobs"),
            ("cancel_job", "Can cancel jobs"),
        ]

    def __str__(self) -> str:
        return f"{self.task_path} [{self.status}] {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def wait_time(self) -> timedelta | None:
        """How long the latest attempt waited in the queue after the job became ready."""
        if self.last_attempted_at is None:
            return None
        return max(self.last_attempted_at - self.run_after, timedelta(0))

    @property
    def run_time(self) -> timedelta | None:
        """How long the latest attempt of a finished job ran."""
        if self.last_attempted_at is None or self.status == JobStatus.READY:
            return None
        if self.finished_at is None:
            return None
        return max(self.finished_at - self.last_attempted_at, timedelta(0))

    def holds_key(self, states, now: datetime) -> bool:
        """Whether this job still holds its unique key for a call covering ``states``."""
        return self.status in states or (self.unique_until is not None and self.unique_until > now)


def new_job(**values) -> Job:
    """An unsaved Job from field values, without ``Model.__init__`` (bulk enqueue builds
    thousands; the signals ``__init__`` sends are of no use for a row nobody saw yet)."""
    job = Job.__new__(Job)
    job._state = models.base.ModelState()
    fixed, fresh = _job_defaults()
    row = job.__dict__
    row.update(fixed)
    for attname, make in fresh:
        if attname not in values:
            row[attname] = make()
    row.update(values)
    return job


def new_job_like(template: Job, **values) -> Job:
    """An unsaved Job with the field values of ``template`` (an unsaved job of the same task)
    but ``values``: a new id, and lists and dicts of its own. Bulk enqueue's per-row path."""
    job = Job.__new__(Job)
    row = job.__dict__
    row.update(template.__dict__)
    job._state = models.base.ModelState()
    for attname, make in _job_defaults()[1]:
        value = row[attname]
        row[attname] = value.copy() if isinstance(value, list | dict) else make()
    row.update(values)
    return job


def _job_defaults() -> tuple[dict, list]:
    """Every Job field's default: fixed values once, and the callables (``uuid4``, ``list``,
    ``dict``) to call per row, so that no two rows share an id, a list or a dict."""
    global _DEFAULTS
    if _DEFAULTS is None:
        fields = Job._meta.concrete_fields
        fresh = [(f.attname, f.default) for f in fields if f.has_default() and callable(f.default)]
        callables = {attname for attname, _ in fresh}
        fixed = {f.attname: f.get_default() for f in fields if f.attname not in callables}
        _DEFAULTS = fixed, fresh
    return _DEFAULTS


_DEFAULTS = None


class Worker(models.Model):
    """One worker process: registered at start, heartbeating while alive."""

    id = models.CharField(primary_key=True, max_length=64)
    backend = models.CharField(max_length=100, default="default")
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True, help_text="Empty: every queue.")
    processes = models.PositiveIntegerField(default=1)
    concurrency = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    last_heartbeat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="What operators should know, e.g. that Redis is unreachable.",
    )

    class Meta:
        db_table = "django_jobs_worker"
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid}"


class Queue(models.Model):
    """Operator state of one queue name (rows exist only for queues someone paused)."""

    name = models.CharField(primary_key=True, max_length=100)
    paused = models.BooleanField(default=False, help_text="Workers do not claim from it.")
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "django_jobs_queue"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class JobMinute(models.Model):
    """Jobs that finished in one minute, per queue; ``queue_name=""`` holds every queue's total.

    Rolled up from the ``finished_at`` index (``jobs.rollup``), never written per job.
    A total row exists for every rolled-up minute, even an empty one: it is the watermark.
    """

    minute = models.DateTimeField()
    queue_name = models.CharField(max_length=100, blank=True)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "django_jobs_jobminute"
        constraints = [
            models.UniqueConstraint(fields=["queue_name", "minute"], name="django_jobs_minute_key")
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.queue_name or '*'}"


class Gate(models.Model):
    """The shared state of one limit key; claims of gated jobs lock this row.

    ``starts`` holds the start times (epoch seconds) inside the current rate window: a sliding
    log, so no window of the rate's length ever holds more starts than the rate allows.
    """

    key = models.CharField(primary_key=True, max_length=255)
    starts = models.JSONField(default=list, blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "django_jobs_gate"
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class FailurePolicy(models.TextChoices):
    STOP = "stop", "Stop: cancel the steps not started"
    CONTINUE = "continue", "Continue: run the next steps anyway"


class Workflow(models.Model):
    """A chain, group or chord: its steps are jobs pointing here (``Job.workflow``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    backend = models.CharField(max_length=100, default="default")
    name = models.CharField(max_length=255, blank=True, help_text="What the canvas looks like.")
    on_failure = models.CharField(max_length=10, choices=FailurePolicy, default=FailurePolicy.STOP)
    #: Step ids in canvas order; ``leaves`` are the steps whose results are the workflow's.
    steps = models.JSONField(default=list, blank=True)
    leaves = models.JSONField(default=list, blank=True)
    #: Whether the result is the list of the leaves' results (the canvas ends with a group).
    returns_list = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "django_jobs_workflow"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or 'workflow'} {self.id}"
