"""A job's attempts as a timeline: start, end, duration, worker and outcome of each.

Failed attempts come from ``Job.errors`` (entries written since the console showed times carry
``started_at``/``finished_at``; older ones have neither, and their times show as unknown). The
latest attempt, when it did not fail (running, succeeded, handed back), comes from the row
itself: ``last_attempted_at``, ``finished_at``, ``claimed_by`` and ``worker_ids``.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.dateparse import parse_datetime

from django_jobs.jobs.leases import LOST
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import CANCELLED_ERROR, JobStatus


@dataclass(frozen=True)
class AttemptRow:
    """One line of the timeline; ``None`` where the time or worker is not known."""

    number: int | None
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str
    outcome: str  # running, succeeded, failed, cancelled, lost, handed back, not recorded
    kind: str  # the status badge class: running, successful, failed, cancelled, ready
    exception: str = ""

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(self.finished_at - self.started_at, timedelta(0))


def when(value) -> datetime | None:
    """An ISO string of an error entry as a datetime; None if absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def failed_row(job: Job, entry: dict, last: bool) -> AttemptRow:
    exception = str(entry.get("exception_class_path") or "?")
    started, finished = when(entry.get("started_at")), when(entry.get("finished_at"))
    # An older entry (no times) of the latest attempt: the row's own columns date it.
    if last and entry.get("attempt") == job.attempts:
        started = started or job.last_attempted_at
    if last and job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        finished = finished or job.finished_at
    if exception == CANCELLED_ERROR or (last and job.status == JobStatus.CANCELLED):
        outcome, kind = ("cancelled", "cancelled")
        if entry.get("attempt") is None:
            outcome = "cancelled before it started"
    elif exception == LOST:
        outcome, kind = "lost (worker stopped heartbeating)", "failed"
    else:
        outcome, kind = "failed", "failed"
    return AttemptRow(
        entry.get("attempt"), started, finished, entry.get("worker_id") or "", outcome, kind,
        exception,
    )  # fmt: skip


def latest_row(job: Job, number: int) -> AttemptRow:
    """The latest attempt when no error entry describes it."""
    worker = job.claimed_by or (job.worker_ids[-1] if job.worker_ids else "")
    start = job.last_attempted_at
    if job.status == JobStatus.RUNNING:
        return AttemptRow(number, start, None, worker, "running", "running")
    if job.status == JobStatus.SUCCESSFUL:
        return AttemptRow(number, start, job.finished_at, worker, "succeeded", "successful")
    if job.status == JobStatus.READY:
        return AttemptRow(number, start, None, worker, "handed back (worker shut down)", "ready")
    return AttemptRow(number, start, job.finished_at, worker, job.status.lower(), "cancelled")


def timeline(job: Job) -> list[AttemptRow]:
    """Every attempt of ``job``, oldest first (plus cancellations, where they happened)."""
    entries = [e for e in job.errors or () if isinstance(e, dict)]
    rows: list[AttemptRow] = []
    seen = 0
    for i, entry in enumerate(entries):
        number = entry.get("attempt")
        if isinstance(number, int):
            rows += [unrecorded(n) for n in range(seen + 1, number)]
            seen = max(seen, number)
        rows.append(failed_row(job, entry, last=i == len(entries) - 1))
    missing = range(seen + 1, job.attempts + 1)
    rows += [unrecorded(n) for n in missing[:-1]]
    if missing:
        rows.append(latest_row(job, job.attempts))
    return rows


def unrecorded(number: int) -> AttemptRow:
    """An attempt nothing recorded (its worker handed it back while shutting down)."""
    return AttemptRow(number, None, None, "", "not recorded (handed back)", "ready")
