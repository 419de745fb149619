"""The workflow admin: chains, groups and chords with a status computed from their steps.

The list reads the statuses of the page's workflows in one grouped query (the index on
``Job.workflow``); a workflow's page lists its steps in canvas order, read by primary key.
"""

from collections import Counter
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_jobs.admin import display
from django_jobs.admin.common import ReadOnlyAdmin
from django_jobs.jobs.models import Job, Workflow
from django_jobs.jobs.status import FINISHED, JobStatus

#: Steps listed on a workflow's page (a group may hold thousands).
STEPS_SHOWN = 500


def step_counts(database: str, workflow_ids: list) -> dict[str, Counter]:
    """``{workflow id: Counter(status → steps)}``: one grouped query over these workflows."""
    counts: dict[str, Counter] = {str(pk): Counter() for pk in workflow_ids}
    if not workflow_ids:
        return counts
    rows = (
        Job.objects.using(database)
        .filter(workflow_id__in=workflow_ids)
        .values_list("workflow_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for workflow_id, status, n in rows:
        counts[str(workflow_id)][status] = n
    return counts


def workflow_state(counts: Counter) -> tuple[str, str]:
    """(label, badge class) of a workflow from its steps' statuses."""
    total = sum(counts.values())
    finished = sum(counts[s] for s in FINISHED)
    if not total:
        return _("No steps left"), "cancelled"
    if finished == total:
        for status in (JobStatus.FAILED, JobStatus.CANCELLED):
            if counts[status]:
                return JobStatus(status).label, display.STATUS_CLASS[status]
        return JobStatus.SUCCESSFUL.label, "successful"
    if counts[JobStatus.RUNNING] or finished:
        return _("In progress"), "running"
    return _("Waiting"), "ready"


class WorkflowChangeList(ChangeList):
    """Reads the step statuses of the workflows on the page once, after the page is read."""

    def get_results(self, request):
        super().get_results(request)
        counts = step_counts(self.queryset.db, [w.pk for w in self.result_list])
        for workflow in self.result_list:
            workflow.step_counts = counts[str(workflow.pk)]


@admin.register(Workflow)
class WorkflowAdmin(ReadOnlyAdmin):
    list_display = (
        "short_id",
        "name",
        "created_at",
        "status_display",
        "progress_display",
        "jobs_link",
    )
    list_display_links = ("short_id", "name")
    search_fields = ("=id", "name")
    ordering = ("-created_at",)
    date_hierarchy = None
    fieldsets = (
        (None, {"fields": ("id", "name", "status_display", "progress_display", "jobs_link")}),
        (_("Definition"), {"fields": ("backend", "on_failure", "returns_list", "created_at")}),
        (_("Steps"), {"fields": ("steps_display",)}),
    )

    class Media:
        css = {"all": ("django_jobs/console.css",)}

    def has_view_permission(self, request, obj=None) -> bool:
        """Workflows are views of jobs: whoever may see jobs may see them."""
        return request.user.has_perm("django_jobs.view_job") or super().has_view_permission(
            request, obj
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting a workflow would orphan its steps' jobs

    def get_changelist(self, request, **kwargs):
        return WorkflowChangeList

    def counts(self, workflow: Workflow) -> Counter:
        found = getattr(workflow, "step_counts", None)
        if found is None:  # the workflow's page: one query of its own
            found = workflow.step_counts = step_counts(workflow._state.db, [workflow.pk])[
                str(workflow.pk)
            ]
        return found

    @admin.display(description="id", ordering="id")
    def short_id(self, workflow: Workflow) -> str:
        return str(workflow.pk)[:8]

    @admin.display(description="status")
    def status_display(self, workflow: Workflow) -> str:
        label, css = workflow_state(self.counts(workflow))
        return format_html('<span class="jobs-status jobs-status-{}">{}</span>', css, label)

    @admin.display(description="steps")
    def progress_display(self, workflow: Workflow) -> str:
        counts = self.counts(workflow)
        done = sum(counts[s] for s in FINISHED)
        total = len(workflow.steps)
        return ngettext(
            "%(done)d of %(total)d step finished",
            "%(done)d of %(total)d steps finished",
            total,
        ) % {"done": done, "total": total}

    @admin.display(description="jobs")
    def jobs_link(self, workflow: Workflow) -> str:
        url = reverse("admin:django_jobs_job_changelist")
        query = urlencode({"workflow__exact": str(workflow.pk)})
        return format_html('<a href="{}?{}">{}</a>', url, query, _("its steps' jobs"))

    @admin.display(description="steps in order")
    def steps_display(self, workflow: Workflow) -> str:
        shown = workflow.steps[:STEPS_SHOWN]
        jobs = {
            str(job.pk): job
            for job in Job.objects.using(workflow._state.db)
            .filter(pk__in=shown)
            .only("id", "task_path", "status", "depends_on", "attempts", "finished_at")
        }
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    n,
                    reverse("admin:django_jobs_job_change", args=[quote(pk)]),
                    pk[:8],
                    jobs[pk].task_path,
                    display.status_badge(jobs[pk].status),
                    ", ".join(p[:8] for p in jobs[pk].depends_on or ()) or "–",
                )
                for n, pk in enumerate(shown, 1)
                if pk in jobs
            ),
        )
        head = format_html(
            "<tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("job"),
            _("task"),
            _("status"),
            _("after"),
        )
        more = ""
        if len(workflow.steps) > STEPS_SHOWN:
            more = format_html(
                "<p>{}</p>",
                _("The first %(shown)d steps of %(total)d.")
                % {"shown": STEPS_SHOWN, "total": len(workflow.steps)},
            )
        return format_html(
            '<table class="jobs-table"><thead>{}</thead><tbody>{}</tbody></table>{}',
            head,
            rows,
            more,
        )
