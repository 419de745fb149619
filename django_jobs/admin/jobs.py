"""The job admin: filtered, searchable changelist; a read-only, readable job page (its
sections, live updates and cancel button in ``job_views``)."""

import uuid

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from django_jobs.admin import actions, display, job_views
from django_jobs.admin.common import ReadOnlyAdmin
from django_jobs.admin.filters import QueueFilter, TaskFilter, WorkerFilter
from django_jobs.admin.pagination import EstimatedCountPaginator
from django_jobs.jobs import selection
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import JobStatus


@admin.register(Job)
class JobAdmin(job_views.JobPageViews, ReadOnlyAdmin):
    list_display = (
        "short_id",
        "task_name",
        "status_badge",
        "queue",
        "attempts_display",
        "enqueued",
        "wait_display",
        "run_display",
        "worker_display",
    )
    list_display_links = ("short_id", "task_name")
    list_filter = (
        "status",
        QueueFilter,
        TaskFilter,
        WorkerFilter,
        ("enqueued_at", admin.DateFieldListFilter),
        ("finished_at", admin.DateFieldListFilter),
    )
    search_fields = ("id", "task_path", "args", "kwargs")
    search_help_text = (
        "A job id (or its first 4+ characters, as shown), or text in the task path or in the "
        "JSON args/kwargs."
    )
    ordering = ("-enqueued_at",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # COUNT(*) over a long history is slow
    actions = (actions.retry_jobs, actions.cancel_jobs, actions.delete_jobs)
    change_form_template = "admin/django_jobs/job/change_form.html"
    # The page is drawn by job/page.html (a header, the attempts, the call, the outcome, the
    # timing); the admin's read-only form needs a field, nothing renders it.
    fields = ("task_path",)

    class Media:
        css = {"all": ("django_jobs/console.css",)}
        js = ("django_jobs/live.js",)

    # --- permissions --------------------------------------------------------------------
    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("django_jobs.retry_job")

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("django_jobs.cancel_job")

    def has_delete_permission(self, request, obj=None) -> bool:
        running = obj is not None and obj.status == JobStatus.RUNNING
        return not running and super().has_delete_permission(request, obj)

    def get_actions(self, request, action_location=None):
        # action_location exists from Django 6.1 on; 6.0 never passes it.
        where = {"action_location": action_location} if action_location else {}
        found = super().get_actions(request, **where)
        found.pop("delete_selected", None)  # renders every row; ours is one bulk DELETE
        return found

    # --- search -------------------------------------------------------------------------
    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        matches = Q(task_path__icontains=term) | Q(args__icontains=term)
        try:  # the short id the changelist shows, or any longer prefix of an id
            matches |= selection.starts_with(queryset.db, selection.id_prefix(term))
        except ValueError:
            pass
        return queryset.filter(matches | Q(kwargs__icontains=term)), False

    # --- columns and fields -------------------------------------------------------------
    @admin.display(description="id", ordering="id")
    def short_id(self, job: Job) -> str:
        return str(job.pk)[:8]

    @admin.display(description="task", ordering="task_path")
    def task_name(self, job: Job) -> str:
        return display.short_task(job.task_path)

    @admin.display(description="queue", ordering="queue_name")
    def queue(self, job: Job) -> str:
        name = job.queue_name
        return format_html('<span class="jobs-cut" title="{}">{}</span>', name, name)

    @admin.display(description="enqueued", ordering="enqueued_at")
    def enqueued(self, job: Job) -> str:
        return display.timestamp(job.enqueued_at)

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        return display.status_badge(job.status)

    @admin.display(description="tries")
    def attempts_display(self, job: Job) -> str:
        """Attempts made / allowed (the live list updates this cell, field-attempts_display)."""
        made, most = job.attempts, job.max_attempts
        title = f"{made} of at most {most} attempts made"
        return format_html('<span title="{}">{}/{}</span>', title, made, most)

    @admin.display(description="wait")
    def wait_display(self, job: Job) -> str:
        return display.duration(job.wait_time)

    @admin.display(description="run time")
    def run_display(self, job: Job) -> str:
        return display.duration(job.run_time)

    @admin.display(description="worker", ordering="claimed_by")
    def worker_display(self, job: Job) -> str:
        if not job.claimed_by:
            return "–"
        url = reverse("admin:django_jobs_worker_change", args=[quote(job.claimed_by)])
        return format_html('<a href="{}">{}</a>', url, job.claimed_by[:8])

    # --- retry / cancel buttons on the job page ------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/retry/", view(self.retry_view), name="django_jobs_job_retry"),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="django_jobs_job_cancel"),
            *super().get_urls(),
        ]

    def retry_view(self, request, object_id):
        return self._act(request, object_id, actions.RETRY, self.has_retry_permission)

    def _act(self, request, object_id, action, allowed):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not allowed(request):
            self.message_user(request, "You may not do that.", messages.ERROR)
        else:
            count = action.service(self.get_queryset(request).filter(pk=job.pk))
            message = action.describe(count)
            self.log_change(request, job, message)
            level = messages.SUCCESS if count else messages.WARNING
            self.message_user(request, message if count else f"{job} was not {action.done}.", level)
        return HttpResponseRedirect(reverse("admin:django_jobs_job_change", args=[quote(job.pk)]))

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        context.update(
            can_retry=obj is not None
            and obj.status in (JobStatus.FAILED, JobStatus.CANCELLED)
            and self.has_retry_permission(request),
            can_cancel=obj is not None
            and job_views.cancellable(obj)
            and self.has_cancel_permission(request),
        )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)
