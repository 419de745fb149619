"""Small HTML and text renderings of job fields for the admin pages."""

import json
from datetime import datetime, timedelta

from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from django_jobs.jobs.status import JobStatus

STATUS_CLASS = {
    JobStatus.READY: "ready",
    JobStatus.RUNNING: "running",
    JobStatus.SUCCESSFUL: "successful",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.BLOCKED: "ready",
}


def pretty_json(value) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return format_html('<pre class="jobs-json">{}</pre>', text)


def duration(value: timedelta | float | None) -> str:
    """'87 ms', '12.345 s', '4 min 3.210 s', '2 h 5 min 3 s'; '–' for nothing."""
    if value is None:
        return "–"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {seconds % 60:.3f} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min {int(seconds % 60)} s"


def status_badge(status: str) -> str:
    label = JobStatus(status).label if status in JobStatus.values else status
    return format_html(
        '<span class="jobs-status jobs-status-{}">{}</span>', STATUS_CLASS.get(status, ""), label
    )


def workflow_steps(job) -> str:
    """The workflow a job belongs to: every step in canvas order, this one in bold."""
    if job.workflow_id is None:
        return "–"
    workflow = job.workflow
    steps = {str(s.pk): s for s in workflow.jobs.only("pk", "task_path", "status", "depends_on")}
    rows = []
    for n, pk in enumerate(workflow.steps, 1):
        step = steps.get(pk)
        if step is None:
            continue
        url = reverse("admin:django_jobs_job_change", args=[quote(step.pk)])
        after = ", ".join(p[:8] for p in step.depends_on or ()) or "–"
        rows.append(
            (
                n,
                url,
                "jobs-current" if step.pk == job.pk else "",
                pk[:8],
                step.task_path,
                status_badge(step.status),
                after,
            )
        )
    table = format_html_join(
        "",
        '<tr><td>{}</td><td><a href="{}" class="{}">{}</a></td><td>{}</td><td>{}</td>'
        "<td>after {}</td></tr>",
        rows,
    )
    return format_html(
        "<p><code>{}</code> ({}, on failure: {})</p><table>{}</table>",
        workflow.name,
        workflow.pk,
        workflow.on_failure,
        table,
    )


# --- times and task paths in the console's lists ------------------------------------------
def exact(moment: datetime, tz=None) -> str:
    """'2025-12-07 15:24:03 UTC': to the second, in ``tz`` (the current time zone if None)."""
    if timezone.is_naive(moment):  # USE_TZ = False: the database's time, zone unknown
        return f"{moment:%Y-%m-%d %H:%M:%S}"
    return timezone.localtime(moment, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def ago(moment: datetime, now: datetime | None = None) -> str:
    """'12 s ago', '4 min ago', '3 h ago', '2 d ago'; 'in 8 s' for a time to come."""
    if now is None:
        now = timezone.now() if timezone.is_aware(moment) else datetime.now()
    seconds = (now - moment).total_seconds()
    span = abs(seconds)
    if span < 60:
        text = f"{int(span)} s"
    elif span < 3600:
        text = f"{int(span // 60)} min"
    elif span < 86400:
        text = f"{int(span // 3600)} h"
    else:
        text = f"{int(span // 86400)} d"
    return f"in {text}" if seconds < -0.5 else f"{text} ago"


def timestamp(moment: datetime | None, now: datetime | None = None, title: str = "") -> str:
    """A time as '12 s ago' with the exact second on hover (``title`` replaces it); '–'."""
    if moment is None:
        return "–"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        title or exact(moment),
        ago(moment, now),
    )


def exact_and_ago(moment: datetime | None, now: datetime | None = None) -> str:
    """'2025-12-07 15:24:03 UTC (12 s ago)', for a page that has room for both; '–'."""
    if moment is None:
        return "–"
    return format_html(
        '<time datetime="{}">{}</time> ({})', moment.isoformat(), exact(moment), ago(moment, now)
    )


def short_task(path: str, room: int = 24) -> str:
    """A task path cut to its last dotted parts that fit in ``room`` characters (at least the
    function's name: '…tasks.send_email', '…reconcile_invoice_payments'), whole on hover."""
    short, parts = path, path.split(".")
    while len(short) > room and len(parts) > 1:
        parts = parts[1:]
        short = "…" + ".".join(parts)
    return format_html('<span class="jobs-cut" title="{}">{}</span>', path, short)
