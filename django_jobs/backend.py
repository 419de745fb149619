"""The ``django.tasks`` backend: validates, serialises and writes Job rows, reads results."""

from dataclasses import replace
from datetime import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.functional import cached_property

from django_jobs import instruments, tracing
from django_jobs.conf import JobsOptions
from django_jobs.exceptions import DuplicateJob
from django_jobs.jobs import limits, unique
from django_jobs.jobs.inserts import insert_job, insert_jobs, insert_unique
from django_jobs.jsonargs import check_json
from django_jobs.signatures import check_call
from django_jobs.tasks import JobTask
from django_jobs.tasks_api import (
    BaseTaskBackend,
    InvalidTaskBackend,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    task_backends,
    task_enqueued,
)

#: Tasks whose validation ``JobsBackend`` keeps before it starts over.
PER_TASK_CACHE = 256


class JobsBackend(BaseTaskBackend):
    """Store jobs as ``django_jobs.Job`` rows; dispatch through the database or Redis."""

    task_class = JobTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict):
        super().__init__(alias, params)
        self.jobs_options = JobsOptions.from_dict(self.options)
        #: id(task) -> (task, USE_TZ, (max_attempts, stored options)): see ``_task_values``.
        self._per_task: dict[int, tuple] = {}

    @property
    def database(self) -> str:
        return self.jobs_options.database

    @cached_property
    def broker(self):
        from django_jobs.brokers import get_broker

        return get_broker(self)

    # --- enqueue --------------------------------------------------------------------------
    def enqueue(self, task: JobTask, args, kwargs) -> TaskResult:
        """Write the job row in the caller's transaction and hand it to the broker.

        A unique task whose key is held returns the holder's result (or raises DuplicateJob).
        """
        job = self.build_job(task, args, kwargs)
        with tracing.enqueue_span([job]):
            if job.unique_key:
                duplicate = insert_unique(job, self.database, task.unique_states, job.enqueued_at)
                if duplicate is not None:
                    tracing.note_duplicate(duplicate)
                    return self._duplicate(duplicate, task)
            else:
                insert_job(self.database, job)
            self.broker.publish([job])
        instruments.jobs_enqueued([job])
        result = self.to_result(job, task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def enqueue_many(self, calls, batch_size: int = 1000) -> list[TaskResult]:
        """Enqueue many ``(task, args, kwargs)`` calls with bulk INSERTs, in the caller's
        transaction; every call is validated before anything is written.

        Unique calls are inserted one by one; a duplicate's place in the returned list holds
        the existing job's result (or, with ``on_duplicate="raise"``, nothing is enqueued).
        """
        from django_jobs.jobs.models import Job

        now = timezone.now()
        calls = [(task, tuple(args), dict(kwargs)) for task, args, kwargs in calls]
        templates: dict[int, Job] = {}  # one validation and one options dict per distinct task
        jobs = []
        for task, args, kwargs in calls:
            template = templates.get(id(task))
            if template is None:
                template = templates[id(task)] = self.build_job(task, args, kwargs, now)
            jobs.append(self.build_job(task, args, kwargs, now, template=template))
        plain = [job for job in jobs if not job.unique_key]
        results: list[TaskResult | None] = [None] * len(jobs)
        with tracing.enqueue_span(jobs, "enqueue_many"):
            with transaction.atomic(using=self.database):
                insert_jobs(self.database, plain, batch_size)
                for index, (job, (task, _, _)) in enumerate(zip(jobs, calls, strict=True)):
                    if job.unique_key:
                        held = insert_unique(job, self.database, task.unique_states, now)
                        if held is not None:
                            results[index] = self._duplicate(held, task)
            new = [job for job, result in zip(jobs, results, strict=True) if result is None]
            self.broker.publish(new)
        instruments.jobs_enqueued(new)
        for index, (job, (task, _, _)) in enumerate(zip(jobs, calls, strict=True)):
            if results[index] is None:
                results[index] = self.to_result(job, task)
                task_enqueued.send(type(self), task_result=results[index])
        return results

    def _duplicate(self, job, task: JobTask) -> TaskResult:
        """The result of the job holding a unique key, or DuplicateJob as the task asks."""
        result = self.to_result(job)
        if task.on_duplicate == "raise":
            raise DuplicateJob(result)
        return result

    async def aenqueue(self, task: JobTask, args, kwargs) -> TaskResult:
        return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)

    def build_job(
        self,
        task: JobTask,
        args,
        kwargs,
        now: datetime | None = None,
        template=None,
        bind: bool = True,
    ):
        """Validate a call and return its unsaved Job row.

        ``template`` (a job built earlier for the same task and ``now``) skips validating the
        task again and shares its per-task values: bulk enqueue pays for them once.
        ``bind=False`` leaves checking the arguments against the signature to the caller.
        """
        from django_jobs.jobs.models import new_job, new_job_like

        args, kwargs = list(args), dict(kwargs)
        check_json(args, "args")
        check_json(kwargs, "kwargs")
        if bind:
            check_call(task, args, kwargs)
        if template is not None:  # the task's values are the template's: copy its row
            return new_job_like(
                template,
                args=args,
                kwargs=kwargs,
                unique_key=unique.job_key(task, args, kwargs, self.alias),
                limit_key=limits.job_key(task, args, kwargs),
            )
        max_attempts, options = self._task_values(task)
        now = now or timezone.now()
        # A run_after in the past is kept as given: it orders the job among overdue ones.
        run_after, until = task.run_after or now, unique.key_until(task, now)
        return new_job(
            backend=self.alias,
            queue_name=task.queue_name,
            priority=task.priority,
            task_path=task.module_path,
            args=args,
            kwargs=kwargs,
            options=dict(options),
            run_after=run_after,
            enqueued_at=now,
            max_attempts=max_attempts,
            timeout=task.timeout,
            unique_key=unique.job_key(task, args, kwargs, self.alias),
            unique_until=until,
            limit_key=limits.job_key(task, args, kwargs),
        )

    def _task_values(self, task: JobTask) -> tuple[int, dict]:
        """Validate ``task`` and return its rows' ``max_attempts`` and stored options.

        Tasks are frozen, so the answer is kept per task object (and the held reference keeps
        its ``id`` from being reused) until many other tasks were seen.
        """
        use_tz = settings.USE_TZ  # validate_task checks run_after against it
        known = self._per_task.get(id(task))
        if known is not None and known[0] is task and known[1] == use_tz:
            return known[2]
        self.validate_task(task)
        max_attempts = task.max_attempts or self.jobs_options.default_max_attempts
        values = max_attempts, task.stored_options()
        if len(self._per_task) >= PER_TASK_CACHE:
            self._per_task.clear()  # e.g. a .using() copy per call: start over
        self._per_task[id(task)] = task, use_tz, values
        return values

    def validate_task(self, task) -> None:
        super().validate_task(task)
        if not isinstance(task, JobTask):
            from django_jobs.tasks_api import TASKS_MODULE, InvalidTask

            raise InvalidTask(
                f"{task.module_path} is a {type(task).__name__}; declare it with "
                f"@django_jobs.task or @{TASKS_MODULE}.task using this backend."
            )

    # --- results --------------------------------------------------------------------------
    def get_result(self, result_id) -> TaskResult:
        from django.core.exceptions import ValidationError

        from django_jobs.jobs.models import Job

        try:
            job = Job.objects.using(self.database).get(pk=result_id, backend=self.alias)
        except (Job.DoesNotExist, ValidationError, ValueError) as e:
            raise TaskResultDoesNotExist(result_id) from e
        return self.to_result(job)

    async def aget_result(self, result_id) -> TaskResult:
        return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)

    def to_result(self, job, task: JobTask | None = None) -> TaskResult:
        """Describe a Job row as Django's ``TaskResult``."""
        from django_jobs import registry
        from django_jobs.jobs.status import TASK_RESULT_STATUS

        task = task or registry.resolve(job.task_path)
        # A job enqueued without run_after is stored with run_after = enqueued_at.
        run_after = job.run_after if job.run_after != job.enqueued_at else None
        if (task.priority, task.queue_name, task.run_after, task.backend) != (
            job.priority,
            job.queue_name,
            run_after,
            job.backend,
        ):
            task = replace(
                task,
                priority=job.priority,
                queue_name=job.queue_name,
                run_after=run_after,
                backend=job.backend,
            )
        result = TaskResult(
            task=task,
            id=str(job.pk),
            status=TASK_RESULT_STATUS[job.status],
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.last_attempted_at,
            args=job.args,
            kwargs=job.kwargs,
            backend=job.backend,
            errors=[
                TaskError(exception_class_path=e["exception_class_path"], traceback=e["traceback"])
                for e in job.errors
            ],
            worker_ids=list(job.worker_ids),
        )
        object.__setattr__(result, "_return_value", job.return_value)
        return result

    # --- checks ---------------------------------------------------------------------------
    def check(self, **kwargs):
        from django_jobs.checks.settings import check_backend

        return check_backend(self)


def jobs_backend(alias: str) -> JobsBackend:
    """The backend ``TASKS[alias]``; ``InvalidTaskBackend`` if it is missing or not ours."""
    backend = task_backends[alias]
    if not isinstance(backend, JobsBackend):
        raise InvalidTaskBackend(f"TASKS[{alias!r}] is not a django_jobs.backend.JobsBackend.")
    return backend


def default_jobs_backend() -> JobsBackend | None:
    """``default`` if it is ours, else the first of ours in TASKS (what the console shows)."""
    for alias in ["default", *task_backends.settings]:
        if alias in task_backends.settings and isinstance(task_backends[alias], JobsBackend):
            return task_backends[alias]
    return None
