"""Plain-text output of the ``jobs`` command: tables, ages, one job's details."""

import json
from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone

from django_jobs.jobs.status import JobStatus

#: Characters of a job id shown in lists (as the admin shows them).
SHORT_ID = 8
LIST_HEADERS = ("ID", "STATUS", "TASK", "QUEUE", "ATTEMPTS", "ENQUEUED", "AGE")


def table(headers: Sequence[str], rows: Sequence[Sequence], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; ``right``: indexes of right-aligned columns."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def age(when: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: 45s, 12m, 3h, 9d ("-" for never)."""
    if when is None:
        return "-"
    seconds = int(((now or timezone.now()) - when).total_seconds())
    if seconds < 0:
        return "in " + age(now or timezone.now(), when)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def moment(when: datetime | None) -> str:
    """A time in the current time zone, to the second, and how long ago ("-" for never)."""
    if when is None:
        return "-"
    text, ago = f"{timezone.localtime(when):%Y-%m-%d %H:%M:%S}", age(when)
    return f"{text} ({ago})" if ago.startswith("in ") else f"{text} ({ago} ago)"


def job_rows(jobs) -> list[tuple]:
    """One row of ``LIST_HEADERS`` per job."""
    now = timezone.now()
    return [
        (
            str(job.pk)[:SHORT_ID],
            job.status,
            job.task_path,
            job.queue_name,
            f"{job.attempts}/{job.max_attempts}",
            f"{timezone.localtime(job.enqueued_at):%Y-%m-%d %H:%M:%S}",
            age(job.enqueued_at, now),
        )
        for job in jobs
    ]


def job_details(job) -> str:
    """Every field an operator asks about, each attempt, and the last traceback."""
    fields = [
        ("id", job.pk),
        ("task", job.task_path),
        ("status", job.status),
        ("backend", job.backend),
        ("queue", f"{job.queue_name} (priority {job.priority})"),
        ("args", json.dumps(job.args)),
        ("kwargs", json.dumps(job.kwargs)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("enqueued", moment(job.enqueued_at)),
        ("run after", moment(job.run_after)),
        ("started", moment(job.started_at)),
        ("last attempt", moment(job.last_attempted_at)),
        ("finished", moment(job.finished_at)),
    ]
    if job.status == JobStatus.RUNNING:
        fields += [("worker", job.claimed_by), ("lease until", moment(job.lease_expires_at))]
    optional = [
        ("cancel asked", job.cancel_requested_at and moment(job.cancel_requested_at)),
        ("workflow", job.workflow_id),
        ("limit key", job.limit_key),
        ("unique key", job.unique_key),
        ("progress", job.progress is not None and json.dumps(job.progress)),
    ]
    fields += [(name, value) for name, value in optional if value]
    if job.status == JobStatus.SUCCESSFUL:
        fields.append(("return value", json.dumps(job.return_value)))
    width = max(len(name) for name, _ in fields)
    lines = [f"{name.ljust(width)}  {value}" for name, value in fields]
    lines += ["", "Attempts", _indent(table(("#", "WORKER", "ERROR"), attempt_rows(job)))]
    last = next((e for e in reversed(job.errors) if e.get("traceback")), None)
    if last:
        lines += ["", f"Last traceback (attempt {last.get('attempt') or '-'})"]
        lines.append(_indent(last["traceback"].rstrip()))
    return "\n".join(lines)


def attempt_rows(job) -> list[tuple]:
    """Each attempt with the worker that ran it and the error class it ended with."""
    errors = {e.get("attempt"): e for e in job.errors}
    rows = []
    for number in range(1, job.attempts + 1):
        worker = job.worker_ids[number - 1] if number <= len(job.worker_ids) else "-"
        error = errors.get(number, {}).get("exception_class_path", "")
        if not error:
            error = _unfailed(job, number)
        rows.append((number, worker, error))
    rows += [("-", "-", e["exception_class_path"]) for e in job.errors if not e.get("attempt")]
    return rows or [("-", "-", "not attempted yet")]


def _unfailed(job, number: int) -> str:
    """What an attempt without an error entry was: the last one still running, a success…"""
    if number < job.attempts:
        return "(no error: snoozed or handed back)"
    return {
        JobStatus.RUNNING: "(running)",
        JobStatus.SUCCESSFUL: "(succeeded)",
    }.get(job.status, "(no error recorded)")


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
