"""What a task taking ``context`` receives."""

import threading
from dataclasses import dataclass

from django_jobs.exceptions import JobCancelled
from django_jobs.tasks_api import TaskContext


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext(TaskContext):
    """Django's TaskContext (``attempt``, ``task_result``) plus progress and cancellation."""

    database: str = "default"
    #: Set by the worker when the job's cancellation is requested.
    cancel_event: threading.Event | None = None

    @property
    def job_id(self) -> str:
        return self.task_result.id

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled while running: stop soon, cleaning up as needed."""
        return self.cancel_event is not None and self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise JobCancelled if the job was cancelled (a convenient check point)."""
        if self.cancelled:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def report_progress(
        self, current: float, total: float | None = None, message: str = ""
    ) -> None:
        """Store how far the job got, for the admin and ``get_result`` readers."""
        from django_jobs.jobs.models import Job

        Job.objects.using(self.database).filter(pk=self.job_id).running().update(
            progress={"current": current, "total": total, "message": message}
        )
