"""Helpers shared by the operations-console tests: users and jobs in a given state."""

from datetime import timedelta

from django.contrib.auth.models import Permission, User
from django.utils import timezone

from django_jobs.jobs.status import JobStatus, error_entry
from django_jobs.models import Job
from tests import tasks

PASSWORD = "correct horse battery staple"


def make_user(username: str, *codenames: str, superuser: bool = False) -> User:
    """A staff user holding the given django_jobs permissions (or a superuser)."""
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", PASSWORD)
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="django_jobs", codename__in=codenames)
    user.user_permissions.set(perms)
    return user


def failed_job(*args, ago: timedelta = timedelta(0), worker: str = "w-1", **kwargs) -> Job:
    """A job that failed its only attempt, with a traceback on record."""
    result = tasks.echo.enqueue(*args, **kwargs)
    now = timezone.now() - ago
    error = error_entry(
        "builtins.ValueError",
        'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n',
        1,
        worker,
    )
    Job.objects.filter(pk=result.id).update(
        status=JobStatus.FAILED,
        attempts=1,
        started_at=now - timedelta(seconds=2),
        last_attempted_at=now - timedelta(seconds=2),
        finished_at=now,
        claimed_by=worker,
        worker_ids=[worker],
        errors=[error],
    )
    return Job.objects.get(pk=result.id)


def set_status(job_id, status: str, **fields) -> None:
    Job.objects.filter(pk=job_id).update(status=status, **fields)


def ended_job(task, *classes: str, ago=timedelta(minutes=5), status=JobStatus.FAILED, run=1.0):
    """A job of ``task`` that ended ``ago`` after one failed attempt per class in ``classes``
    (none: no error recorded), its last attempt having run ``run`` seconds."""
    result = task.enqueue(*([1] if task is tasks.three_per_minute else [1, 2]))
    at = timezone.now() - ago
    errors = [
        error_entry(cls, f"Traceback (most recent call last):\n{cls}: attempt {n}\n", n, "w-1")
        for n, cls in enumerate(classes, start=1)
    ]
    set_status(
        result.id,
        status,
        errors=errors,
        attempts=len(classes),
        run_after=at - timedelta(seconds=run + 0.5),
        started_at=at - timedelta(seconds=run),
        last_attempted_at=at - timedelta(seconds=run),
        finished_at=at,
    )
    return result.id
