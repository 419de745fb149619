"""What a task taking ``context`` receives."""

from dataclasses import dataclass

from django.tasks import TaskContext


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext(TaskContext):
    """Django's TaskContext (``attempt``, ``task_result``) plus progress reporting."""

    database: str = "default"

    @property
    def job_id(self) -> str:
        return self.task_result.id

    def report_progress(
        self, current: float, total: float | None = None, message: str = ""
    ) -> None:
        """Store how far the job got, for the admin and ``get_result`` readers."""
        from .models import Job

        Job.objects.using(self.database).filter(pk=self.job_id).running().update(
            progress={"current": current, "total": total, "message": message}
        )
