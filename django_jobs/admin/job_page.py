"""The job page's sections, rendered for the page and again for its live updates, and the
live state of the changelist's rows (``JobAdmin.live_view``)."""

import json
from datetime import datetime, timedelta

from django.template.loader import render_to_string

from django_jobs.admin import display
from django_jobs.admin.attempts import timeline
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import JobStatus

#: The parts of the page that change while a job runs, in page order. Errors show above the
#: timeline for a failed job (``errors_first``), below it otherwise.
LIVE_SECTIONS = ("summary", "errors_first", "attempts", "errors", "outcome", "timing")
#: The columns the live endpoint reads (everything the live sections show).
LIVE_FIELDS = (
    "id", "task_path", "status", "queue_name", "priority", "attempts", "max_attempts",
    "run_after", "enqueued_at", "started_at", "last_attempted_at", "finished_at", "timeout",
    "lease_expires_at", "cancel_requested_at", "claimed_by", "worker_ids", "errors",
    "return_value", "progress",
)  # fmt: skip
#: What a changelist row needs.
ROW_FIELDS = ("id", "status", "attempts", "max_attempts", "progress", "cancel_requested_at")


def progress(job: Job) -> dict | None:
    """``Job.progress`` made ready to draw: current, total, percent (None if no total), message."""
    value = job.progress
    if not isinstance(value, dict):
        return None
    current, total = value.get("current"), value.get("total")
    numbers = isinstance(current, int | float) and isinstance(total, int | float)
    percent = min(max(current / total * 100, 0), 100) if numbers and total > 0 else None
    return {
        "current": current,
        "total": total,
        "percent": percent,
        "message": str(value.get("message") or ""),
    }


def running_for(job: Job, now: datetime) -> timedelta | None:
    if job.status != JobStatus.RUNNING or job.last_attempted_at is None:
        return None
    return max(now - job.last_attempted_at, timedelta(0))


def last_line(entry: dict) -> str:
    """The exception's message: the last line of its traceback."""
    lines = [line for line in str(entry.get("traceback") or "").splitlines() if line.strip()]
    return lines[-1] if lines else str(entry.get("exception_class_path") or "")


def context(job: Job, now: datetime) -> dict:
    errors = [e for e in job.errors or () if isinstance(e, dict)]
    rows = timeline(job)
    running = running_for(job, now)
    return {
        "job": job,
        "status_html": display.status_badge(job.status),
        "running": job.status == JobStatus.RUNNING,
        "finished": job.is_finished,
        "running_for": running,
        "run_time": job.run_time,
        "progress": progress(job),
        "attempts": [
            {"row": r, "duration": running if r.outcome == "running" else r.duration} for r in rows
        ],
        "last_error": errors[-1] if errors else None,
        "last_error_message": last_line(errors[-1]) if errors else "",
        "earlier_errors": [(e, last_line(e)) for e in reversed(errors[:-1])],
        "errors_first": job.status == JobStatus.FAILED,
        "return_value_json": json.dumps(
            job.return_value, indent=2, ensure_ascii=False, default=str
        ),
    }


def sections(job: Job, now: datetime) -> dict[str, str]:
    """The live sections' HTML; an empty string for a section this job does not show."""
    values = context(job, now)
    html = {}
    for name in LIVE_SECTIONS:
        if name == "errors_first" and not values["errors_first"]:
            html[name] = ""
        elif name == "errors" and values["errors_first"]:
            html[name] = ""
        else:
            template = "errors" if name == "errors_first" else name
            html[name] = render_to_string(f"admin/django_jobs/job/_{template}.html", values)
    return html


def progress_html(job: Job) -> str:
    return render_to_string("admin/django_jobs/job/_progress.html", {"progress": progress(job)})


def live_row(job: Job) -> dict:
    """A changelist row's live state."""
    return {
        "id": str(job.pk),
        "state": job.status,
        "finished": job.is_finished,
        "attempts": f"{job.attempts}/{job.max_attempts}",
        "status_html": display.status_badge(job.status),
        "progress_html": progress_html(job) if job.status == JobStatus.RUNNING else "",
        "stop_requested": job.cancel_requested_at is not None,
    }
