"""The statuses of a job, how they show in Django's ``TaskResult``, and ``Job.errors`` entries."""

from datetime import datetime

from django.db import models

from django_jobs.tasks_api import TaskResultStatus


class JobStatus(models.TextChoices):
    READY = "READY", "Ready"
    RUNNING = "RUNNING", "Running"
    SUCCESSFUL = "SUCCESSFUL", "Successful"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"
    #: A workflow step waiting for the steps it depends on; no claim ever sees it.
    BLOCKED = "BLOCKED", "Blocked"


FINISHED = (JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELLED)

#: How our statuses appear in Django's ``TaskResult``.
TASK_RESULT_STATUS = {
    JobStatus.READY: TaskResultStatus.READY,
    JobStatus.RUNNING: TaskResultStatus.RUNNING,
    JobStatus.SUCCESSFUL: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
    JobStatus.BLOCKED: TaskResultStatus.READY,
}


def error_entry(
    exception_class_path: str,
    traceback: str,
    attempt: int | None,
    worker_id: str,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
) -> dict:
    """Describe one failed attempt as stored in ``Job.errors``.

    ``started_at``/``finished_at`` (ISO strings) are recorded where known; entries written
    before they existed have neither, and readers must cope.
    """
    entry = {
        "exception_class_path": exception_class_path,
        "traceback": traceback,
        "attempt": attempt,
        "worker_id": worker_id,
    }
    for key, value in (("started_at", started_at), ("finished_at", finished_at)):
        if value is not None:
            entry[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return entry


#: ``errors`` entry of a job cancelled before it ran (running ones record their traceback).
CANCELLED_ERROR = "django_jobs.exceptions.JobCancelled"


def cancelled_entry(text: str, now: datetime | None = None) -> dict:
    return error_entry(CANCELLED_ERROR, f"{CANCELLED_ERROR}: {text}\n", None, "", None, now)
