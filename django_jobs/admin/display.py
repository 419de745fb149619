"""Small HTML and text renderings of job fields for the admin pages."""

import json
from datetime import timedelta

from django.contrib.admin.utils import quote
from django.urls import reverse
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
    """'850 ms', '12.3 s', '4 min 3 s', '2 h 5 min'; '–' for nothing."""
    if value is None:
        return "–"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


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
