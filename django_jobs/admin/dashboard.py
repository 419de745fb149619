"""The operations dashboard (live figures from a JSON endpoint) and its queue pause/resume."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from django_jobs.admin.common import database, stale_after
from django_jobs.admin.pages import PageAdmin
from django_jobs.console import queries
from django_jobs.console.models import Dashboard
from django_jobs.jobs import operations
from django_jobs.jobs.models import Queue

PAUSE = "django_jobs.change_queue"
REFRESH_SECONDS = 5


@admin.register(Dashboard)
class DashboardAdmin(PageAdmin):
    """Background jobs › Dashboard in the admin index; anyone who may view jobs may see it."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name="django_jobs_dashboard_changelist"),
            path("data/", view(self.data_view), name="django_jobs_dashboard_data"),
            path("queue/", view(self.queue_view), name="django_jobs_dashboard_queue"),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Jobs dashboard",
            "opts": self.model._meta,
            "snapshot": self.snapshot(),
            "can_pause": request.user.has_perm(PAUSE),
            "refresh_seconds": REFRESH_SECONDS,
            "data_url": reverse("admin:django_jobs_dashboard_data"),
            "queue_url": reverse("admin:django_jobs_dashboard_queue"),
            "job_url": reverse("admin:django_jobs_job_changelist"),
            "worker_url": reverse("admin:django_jobs_worker_changelist"),
        }
        return TemplateResponse(request, "admin/django_jobs/dashboard/dashboard.html", context)

    def data_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(self.snapshot(), encoder=DjangoJSONEncoder)

    def queue_view(self, request):
        """POST queue=<name> action=pause|resume: from the dashboard's buttons."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(PAUSE):
            raise PermissionDenied
        name, action = request.POST.get("queue", ""), request.POST.get("action")
        if not name or action not in ("pause", "resume"):
            return JsonResponse({"error": "queue and action=pause|resume required"}, status=400)
        change = operations.pause_queue if action == "pause" else operations.resume_queue
        change(database(), name)
        queue = Queue.objects.using(database()).get(pk=name)
        self.log_change(request, queue, f"{action.capitalize()}d queue {name}.")
        if request.headers.get("accept", "").startswith("application/json"):
            return JsonResponse({"queue": name, "paused": queue.paused})
        messages.success(request, f"{action.capitalize()}d queue {name}.")
        return HttpResponseRedirect(reverse("admin:django_jobs_dashboard_changelist"))

    @staticmethod
    def snapshot() -> dict:
        return queries.snapshot(database(), timezone.now(), stale_after())
