"""The job page's views: its sections, the live endpoint the page and the changelist poll,
and the Cancel button (with its confirmation) for jobs waiting or running."""

import uuid

from django.contrib import messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from django_jobs import tracing
from django_jobs.admin import actions, display, job_page
from django_jobs.jobs import operations
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import JobStatus

#: The changelist shows at most this many rows: more ids in one poll is refused.
MAX_LIVE_IDS = 100
#: Seconds between two polls of a running job's page.
REFRESH_SECONDS = 2


def cancellable(job: Job) -> bool:
    """Waiting jobs can be cancelled, running ones asked to stop (once)."""
    waiting = job.status in (JobStatus.READY, JobStatus.BLOCKED)
    return waiting or (job.status == JobStatus.RUNNING and job.cancel_requested_at is None)


class JobPageViews:
    """Mixed into ``JobAdmin``: the job page's content, ``live/`` and ``<id>/cancel/``."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("live/", view(self.live_view), name="django_jobs_job_live"),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="django_jobs_job_cancel"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            context.update(page_context(obj))
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    # --- live -----------------------------------------------------------------------------
    def live_view(self, request) -> HttpResponse:
        """GET ?id=…&id=… (the rows on screen): their status, attempts and progress.

        With ``detail=1`` and one id: the job page's live sections too. One query by
        primary key; read-only, so POST and the like are refused.
        """
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            ids = [uuid.UUID(value) for value in request.GET.getlist("id")]
        except ValueError:
            return JsonResponse({"error": "id: job ids (UUIDs) expected"}, status=400)
        detail = request.GET.get("detail") == "1"
        if len(ids) > MAX_LIVE_IDS or (detail and len(ids) != 1):
            return JsonResponse({"error": f"1 to {MAX_LIVE_IDS} ids, one with detail"}, status=400)
        now = timezone.now()
        fields = job_page.LIVE_FIELDS if detail else job_page.ROW_FIELDS
        jobs = list(self.get_queryset(request).filter(pk__in=ids).only(*fields)) if ids else []
        rows = []
        for job in jobs:
            row = job_page.live_row(job)
            if detail:
                row["sections"] = job_page.sections(job, now)
                row["can_cancel"] = cancellable(job) and self.has_cancel_permission(request)
            rows.append(row)
        return JsonResponse({"now": now.isoformat(), "jobs": rows})

    # --- cancel ---------------------------------------------------------------------------
    def cancel_view(self, request, object_id) -> HttpResponse:
        """POST: a confirmation page; POST with confirmed=yes: cancel it, or ask it to stop."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = get_object_or_404(self.get_queryset(request), pk=object_id)
        back = reverse("admin:django_jobs_job_change", args=[quote(job.pk)])
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        if request.POST.get("confirmed") != "yes":
            return self.cancel_confirmation(request, job, back)
        result = operations.cancel_or_stop(self.get_queryset(request).filter(pk=job.pk))
        if sum(result):
            message = actions.cancel_message(result)
            self.log_change(request, job, message)
            self.message_user(request, message, messages.SUCCESS)
        else:
            self.message_user(request, f"{job} was not cancelled: it is not waiting or running, "
                              "or was already asked to stop.", messages.WARNING)  # fmt: skip
        return HttpResponseRedirect(back)

    def cancel_confirmation(self, request, job: Job, back: str) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel job",
            "opts": self.model._meta,
            "original": job,
            "running": job.status == JobStatus.RUNNING,
            "back": back,
        }
        return TemplateResponse(request, "admin/django_jobs/job/cancel_confirmation.html", context)


def page_context(job: Job) -> dict:
    """What job/page.html draws: the live sections and the parts that never change."""
    found = tracing.trace_id(job.trace_context)
    return {
        "job": job,
        # The status is in the header (and kept current there); str(job) would freeze it.
        "subtitle": f"{job.task_path} {job.pk}",
        "live_sections": list(job_page.sections(job, timezone.now()).items()),
        "live_url": f"{reverse('admin:django_jobs_job_live')}?id={job.pk}&detail=1",
        "refresh_seconds": REFRESH_SECONDS,
        "finished": job.is_finished,
        "args_html": display.pretty_json(job.args),
        "kwargs_html": display.pretty_json(job.kwargs),
        "options_html": display.pretty_json(job.options),
        "trace_id": found or "",
        "workflow_html": display.workflow_steps(job) if job.workflow_id else "",
    }
