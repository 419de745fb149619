"""The queues page: every queue seen, with its depth and state, paused and resumed from there.

A Queue row exists only for a queue someone paused, so the page is not a changelist over that
table: it lists the queues the backends declare (``QUEUES``) and every queue with work or
recent counters (``console.queries.queues``: the claim and lease indexes, the per-minute
counters), with a Queue row's state where there is one.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from django_jobs.admin import display
from django_jobs.admin.common import database
from django_jobs.backend import JobsBackend
from django_jobs.console import queries
from django_jobs.jobs import operations
from django_jobs.jobs.models import Queue
from django_jobs.tasks_api import task_backends

PAUSE = "django_jobs.change_queue"


def declared_queues(db: str) -> set[str]:
    """The queue names in ``QUEUES`` of every django-jobs backend writing to ``db``."""
    names: set[str] = set()
    for alias in task_backends.settings:
        backend = task_backends[alias]
        if isinstance(backend, JobsBackend) and backend.jobs_options.database == db:
            names.update(backend.queues)
    return names


def queue_rows(db: str) -> list[dict]:
    """One dict per queue, sorted by name, each with a readable ``oldest_ready`` age."""
    rows = queries.queues(db, timezone.now(), also=declared_queues(db))
    for row in rows:
        row["oldest_ready"] = display.duration(row["oldest_ready_age"])
    return rows


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    """Background jobs › Queues: a page of its own in place of the changelist of paused queues."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # no form: pausing is the only change, and it needs change_queue

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("django_jobs.view_queue") or self.can_pause(request)

    def can_pause(self, request) -> bool:
        return request.user.has_perm(PAUSE)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name="django_jobs_queue_changelist"),
            path("state/", view(self.state_view), name="django_jobs_queue_state"),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": _("Queues"),
            "opts": self.model._meta,
            "queues": queue_rows(database()),
            "can_pause": self.can_pause(request),
            "state_url": reverse("admin:django_jobs_queue_state"),
            "job_url": reverse("admin:django_jobs_job_changelist"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/django_jobs/queue/queues.html", context)

    def state_view(self, request):
        """POST queue=<name> action=pause|resume, then back to the queues page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.can_pause(request):
            raise PermissionDenied
        name, action = request.POST.get("queue", ""), request.POST.get("action")
        back = HttpResponseRedirect(reverse("admin:django_jobs_queue_changelist"))
        if not name or action not in ("pause", "resume"):
            messages.error(request, _("Choose a queue to pause or resume."))
            return back
        db = database()
        if action == "pause":
            operations.pause_queue(db, name)
            done = _("Paused queue %(name)s: workers claim nothing from it.") % {"name": name}
        else:
            operations.resume_queue(db, name)
            done = _("Resumed queue %(name)s.") % {"name": name}
        queue = Queue.objects.using(db).filter(pk=name).first()
        if queue is not None:
            self.log_change(request, queue, done)
        messages.success(request, done)
        return back
