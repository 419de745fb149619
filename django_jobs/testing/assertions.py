"""Read the job table to say what was enqueued, with failure messages listing what was."""

import json

from django_jobs.jobs.models import Job
from django_jobs.tasks_api import DEFAULT_TASK_BACKEND_ALIAS, task_backends

#: Jobs listed in a failure message before "… and N more".
SHOWN = 20


def task_path(task) -> str:
    """The dotted path a job row stores for ``task`` (a task object or a dotted path)."""
    return task if isinstance(task, str) else task.module_path


def _alias(task, backend: str | None) -> str:
    if backend:
        return backend
    return getattr(task, "backend", None) or DEFAULT_TASK_BACKEND_ALIAS


def enqueued_jobs(task=None, *, backend: str | None = None, queue: str | None = None, **filters):
    """The jobs of ``task`` (all tasks: None) on ``backend``, oldest first, as ``Job`` rows.

    Every job enqueued counts, whatever became of it since (run, failed, cancelled).
    ``filters`` are passed to ``Job.objects.filter`` (e.g. ``status="READY"``).
    """
    alias = _alias(task, backend)
    jobs = Job.objects.using(task_backends[alias].database).filter(backend=alias, **filters)
    if task is not None:
        jobs = jobs.filter(task_path=task_path(task))
    if queue is not None:
        jobs = jobs.filter(queue_name=queue)
    return list(jobs.order_by("enqueued_at", "pk"))


def assert_enqueued(task, *args, **kwargs) -> Job:
    """Assert that ``task`` was enqueued with exactly these arguments; return its latest job."""
    path = task_path(task)
    expected_args, expected_kwargs = _as_stored(list(args)), _as_stored(kwargs)
    jobs = enqueued_jobs(task)
    matching = [j for j in jobs if (j.args, j.kwargs) == (expected_args, expected_kwargs)]
    if matching:
        return matching[-1]
    wanted = _call(path, expected_args, expected_kwargs)
    if jobs:
        raise AssertionError(
            f"{wanted} was not enqueued; {path} was enqueued {len(jobs)} time(s), with other "
            f"arguments:\n{_listing(jobs)}"
        )
    raise AssertionError(f"{wanted} was not enqueued; {_everything(task)}")


def assert_not_enqueued(task) -> None:
    """Assert that no job of ``task`` was enqueued (with any arguments)."""
    jobs = enqueued_jobs(task)
    if jobs:
        raise AssertionError(
            f"{task_path(task)} was enqueued {len(jobs)} time(s), expected none:\n{_listing(jobs)}"
        )


def _as_stored(value):
    """Arguments as the job row holds them (JSON: tuples become lists)."""
    return json.loads(json.dumps(value))


def _call(path: str, args: list, kwargs: dict) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{path}({', '.join(parts)})"


def _everything(task) -> str:
    jobs = enqueued_jobs(backend=_alias(task, None))
    if not jobs:
        return "no job was enqueued at all."
    return f"the jobs enqueued are:\n{_listing(jobs)}"


def _listing(jobs) -> str:
    lines = [
        f"  {_call(job.task_path, job.args, job.kwargs)}  queue={job.queue_name} "
        f"status={job.status} id={job.pk}"
        for job in jobs[:SHOWN]
    ]
    if len(jobs) > SHOWN:
        lines.append(f"  … and {len(jobs) - SHOWN} more")
    return "\n".join(lines)
