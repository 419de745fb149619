"""The failures page: failed jobs grouped by task and exception class; retry or discard a group.

Both actions are one confirmed POST on the group (task, exception class, and the window's
bounds as the operator saw them), and call the same operations as the job list's actions:
``operations.retry_jobs`` (retry) and ``operations.delete_jobs`` (discard: the group's failed
jobs are deleted).
"""

from dataclasses import dataclass, replace
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
from django.utils.translation import gettext_lazy as _lazy
from django.utils.translation import ngettext

from django_jobs.admin import actions
from django_jobs.admin.common import database
from django_jobs.admin.pages import PageAdmin
from django_jobs.console import failures
from django_jobs.console.models import Failure

#: The group actions, by the name the page posts: (bulk action, permission).
GROUP_ACTIONS = {
    "retry": (
        replace(
            actions.RETRY,
            scope=_lazy(
                "The group's failed jobs are queued again, each with a fresh attempt budget."
            ),
        ),
        "django_jobs.retry_job",
    ),
    "discard": (
        replace(
            actions.DELETE,
            verb="Discard",
            done="discarded",
            scope=_lazy("Discarding deletes the group's failed jobs: they cannot be recovered."),
        ),
        "django_jobs.delete_job",
    ),
}
WINDOW_LABELS = {
    "hour": _lazy("last hour"),
    "day": _lazy("last 24 hours"),
    "week": _lazy("last 7 days"),
}


@dataclass(frozen=True)
class GroupRequest:
    """A group action as posted: which action, which group, and the window's bounds."""

    name: str
    action: actions.BulkAction
    task: str
    exception_class: str
    window: str
    start: datetime
    end: datetime
    from_task: str

    @classmethod
    def parse(cls, data: QueryDict, now: datetime) -> "GroupRequest | None":
        name = data.get("action", "")
        if name not in GROUP_ACTIONS or "task" not in data or "exception_class" not in data:
            return None
        window = _window(data)
        return cls(
            name=name,
            action=GROUP_ACTIONS[name][0],
            task=data["task"],
            exception_class=data["exception_class"],
            window=window,
            start=_moment(data.get("since")) or failures.since(now, window),
            end=_moment(data.get("until")) or now,
            from_task=data.get("from_task", ""),
        )

    def jobs(self):
        return failures.group_jobs(
            database(), self.start, self.end, self.task, self.exception_class
        )

    @property
    def back(self) -> str:
        return _page_url(self.window, self.from_task)


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
        context = {
            **self.page_context(request, _("Failures")),
            "failures": failures.groups(database(), now, window, task),
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
        group = GroupRequest.parse(request.POST, timezone.now())
        if group is None:
            return HttpResponseBadRequest("action=retry|discard, task and exception_class required")
        if not request.user.has_perm(GROUP_ACTIONS[group.name][1]):
            raise PermissionDenied
        if request.POST.get("confirmed") != "yes":
            return self.confirmation(request, group)
        count = group.action.service(group.jobs())
        message = ngettext(
            "%(verb)s %(count)d failed job of %(task)s raising %(cls)s.",
            "%(verb)s %(count)d failed jobs of %(task)s raising %(cls)s.",
            count,
        ) % {
            "verb": group.action.done.capitalize(),
            "count": count,
            "task": group.task,
            "cls": group.exception_class or "–",
        }
        cls = group.exception_class or "(no error)"
        scope = f"failures of {group.task} raising {cls} ({group.start:%Y-%m-%d %H:%M:%S} →)"
        actions.log(request, group.action, message, None, scope)
        self.message_user(request, message, messages.SUCCESS if count else messages.WARNING)
        return HttpResponseRedirect(group.back)

    def confirmation(self, request, group: GroupRequest) -> TemplateResponse:
        title = _("%(verb)s a failure group") % {"verb": group.action.verb}
        context = {
            **self.page_context(request, title),
            "group": group,
            "count": group.jobs().count(),
            "window_label": WINDOW_LABELS[group.window],
            "since": group.start.isoformat(),
            "until": group.end.isoformat(),
        }
        return TemplateResponse(request, "admin/django_jobs/failures/confirm.html", context)


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
