"""django-jobs: background jobs for Django, as a ``django.tasks`` backend."""

from django_jobs.exceptions import Discard, DuplicateJob, JobCancelled, Snooze
from django_jobs.tasks_api import (
    DEFAULT_TASK_BACKEND_ALIAS,
    DEFAULT_TASK_PRIORITY,
    DEFAULT_TASK_QUEUE_NAME,
)

__all__ = [
    "Discard", "DuplicateJob", "JobCancelled", "Snooze", "cancel", "chain", "chord", "group",
    "task",
]  # fmt: skip


def __getattr__(name: str):
    # Workflows are imported lazily: this package loads before Django's apps.
    if name in ("chain", "chord", "group"):
        from django_jobs import workflows

        return getattr(workflows, name)
    raise AttributeError(f"module 'django_jobs' has no attribute {name!r}")


def task(
    function=None,
    *,
    priority: int = DEFAULT_TASK_PRIORITY,
    queue_name: str = DEFAULT_TASK_QUEUE_NAME,
    backend: str = DEFAULT_TASK_BACKEND_ALIAS,
    takes_context: bool = False,
    **options,
):
    """Declare a task, passing extra options (``max_attempts``, ``timeout``…) to the backend.

    Same signature as Django 6.1's ``django.tasks.task``; works on Django 6.0 too, whose
    ``task()`` does not forward extra keywords to the backend's ``task_class``, and on 5.2.
    """
    from django_jobs.tasks_api import task_backends

    if "run_after" in options:
        raise TypeError("run_after cannot be set on @task; use .using(run_after=...).")

    def wrapper(func):
        return task_backends[backend].task_class(
            func=func,
            priority=priority,
            queue_name=queue_name,
            backend=backend,
            takes_context=takes_context,
            run_after=None,  # required on Django 6.0
            **options,
        )

    return wrapper(function) if function else wrapper


def cancel(result, backend: str | None = None) -> bool:
    """Cancel a job, given its ``TaskResult`` or id: at once if it has not started, else by
    asking its worker to stop it. Returns False if the job had already finished (or was
    already being cancelled).
    """
    from django_jobs.jobs import operations
    from django_jobs.tasks_api import task_backends

    if hasattr(result, "id") and hasattr(result, "backend"):
        job_id, backend = result.id, backend or result.backend
    else:
        job_id = str(result)
    database = task_backends[backend or DEFAULT_TASK_BACKEND_ALIAS].jobs_options.database
    return operations.cancel(database, [job_id]) > 0
