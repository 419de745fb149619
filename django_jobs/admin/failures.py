"""The failures page: failed jobs grouped by task and exception class; retry or discard a group.

Both actions are one confirmed POST on the group (task, exception class, and the window's
bounds as the operator saw them), and call the same operations as the job list's actions:
``operations.retry_jobs`` (retry) and ``operations.delete_jobs`` (discard: the group's failed
jobs are deleted).
"""

from datetime import datetime

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    QueryDict,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_jobs.admin import actions
from django_jobs.admin.common import database
from django_jobs.admin.pages import PageAdmin
from django_jobs.console import failures
from django_jobs.console.models import Failure

#: The group actions, by the name the page posts: (bulk action, permission).
GROUP_ACTIONS = {
    "retry": (actions.RETRY, "django_jobs.retry_job"),
    "discard": (actions.DELETE, "django_jobs.delete_job"),
}
WINDOW_LABELS = {"hour": "last hour", "day": "last 24 hours", "week": "last 7 days"}


@admin.register(Failure)
class FailureAdmin(PageAdmin):
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name="django_jobs_failure_changelist"),
            path("group/", view(self.group_view), name="django_jobs_failure_group"),
        ]

    def changelist_view(self, request, extra_context=None):
        self.check_view(request)
        window = _window(request.GET)
        task = request.GET.get("task") or None
        now = timezone.now()
        found = failures.groups(database(), now, window, task)
        context = {
            **self.page_context(request, _("Failures")),
            "failures": found,
            "now": now,
            "window": window,
            "windows": WINDOW_LABELS,
            "task": task,
            "scan_limit": failures.SCAN_LIMIT,
            "can_retry": request.user.has_perm(GROUP_ACTIONS["retry"][1]),
            "can_discard": request.user.has_perm(GROUP_ACTIONS["discard"][1]),
        }
        return TemplateResponse(request, "admin/django_jobs/failures/failures.html", context)

    def group_view(self, request):
        """POST action, task, exception_class, window, since, until: confirm, then act."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        data = request.POST
        action, permission = GROUP_ACTIONS.get(data.get("action"), (None, None))
        if action is None or "task" not in data or "exception_class" not in data:
            return HttpResponseBadRequest("action=retry|discard, task and exception_class required")
        if not request.user.has_perm(permission):
            raise PermissionDenied
        window = _window(data)
        now = timezone.now()
        start = _moment(data.get("since")) or failures.since(now, window)
        end = _moment(data.get("until")) or now
        task, cls = data["task"], data["exception_class"]
        jobs = failures.group_jobs(database(), start, end, task, cls)
        back = _page_url(window, data.get("from_task"))
        if data.get("confirmed") != "yes":
            context = {
                **self.page_context(request, _("%(verb)s a failure group") % {"verb": action.verb}),
                "action": action,
                "action_name": data["action"],
                "count": jobs.count(),
                "task": task,
                "exception_class": cls,
                "window": window,
                "window_label": WINDOW_LABELS[window],
                "since": start.isoformat(),
                "until": end.isoformat(),
                "from_task": data.get("from_task", ""),
                "back": back,
            }
            return TemplateResponse(request, "admin/django_jobs/failures/confirm.html", context)
        count = action.service(jobs)
        message = ngettext(
            "%(verb)s %(count)d failed job of %(task)s raising %(cls)s.",
            "%(verb)s %(count)d failed jobs of %(task)s raising %(cls)s.",
            count,
        ) % {"verb": action.done.capitalize(), "count": count, "task": task, "cls": cls or "–"}
        scope = f"failures of {task} raising {cls or '(no error)'} ({start:%Y-%m-%d %H:%M:%S} →)"
        actions.log(request, action, message, None, scope)
        self.message_user(request, message, messages.SUCCESS if count else messages.WARNING)
        return HttpResponseRedirect(back)


def _window(params: QueryDict) -> str:
    window = params.get("window", failures.DEFAULT_WINDOW)
    return window if window in failures.WINDOWS else failures.DEFAULT_WINDOW


def _moment(value: str | None) -> datetime | None:
    try:
        return parse_datetime(value) if value else None
    except ValueError:
        return None


def _page_url(window: str, task: str | None) -> str:
    query = QueryDict(mutable=True)
    query["window"] = window
    if task:
        query["task"] = task
    return f"{reverse('admin:django_jobs_failure_changelist')}?{query.urlencode()}"
