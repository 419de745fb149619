"""Bulk job actions (retry, cancel, delete) on selected rows or on everything filtered.

Each action is one service call (one bulk statement, the same as the ``jobs`` command) and
one admin log record: an entry per job for a selection, one summary entry for a filter.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.template.response import TemplateResponse
from django.utils.translation import ngettext

from django_jobs.jobs import operations
from django_jobs.jobs.models import Job

#: A selection up to this size is logged one entry per job; more gets a summary entry.
LOG_EACH = 200


@dataclass(frozen=True)
class BulkAction:
    name: str
    verb: str
    done: str
    service: Callable
    flag: int
    scope: str
    always_confirm: bool = False
    #: Turns what ``service`` returned into the message shown and logged (default: a count).
    report: Callable | None = None
    #: The default message, singular and plural: ("Retried %(count)d job.", "… jobs.").
    said: tuple[str, str] = ("Done: %(count)d job.", "Done: %(count)d jobs.")

    def describe(self, result) -> str:
        if self.report is not None:
            return self.report(result)
        return ngettext(*self.said, result) % {"count": result}


def cancel_message(result: operations.Cancelled) -> str:
    """'Cancelled 2 jobs; asked 1 running job to stop.': never 'cancelled' for a request."""
    parts = []
    if result.cancelled or not result.asked_to_stop:
        parts.append(
            ngettext("cancelled %(n)d job", "cancelled %(n)d jobs", result.cancelled)
            % {"n": result.cancelled}
        )
    if result.asked_to_stop:
        parts.append(
            ngettext(
                "asked %(n)d running job to stop",
                "asked %(n)d running jobs to stop",
                result.asked_to_stop,
            )
            % {"n": result.asked_to_stop}
        )
    text = "; ".join(parts)
    return f"{text[0].upper()}{text[1:]}."


RETRY = BulkAction(
    "retry_jobs",
    "Retry",
    "retried",
    operations.retry_jobs,
    CHANGE,
    "Only failed and cancelled jobs are queued again, each with a fresh attempt budget.",
    said=("Retried %(count)d job.", "Retried %(count)d jobs."),
)
CANCEL = BulkAction(
    "cancel_jobs",
    "Cancel",
    "cancelled",
    operations.cancel_or_stop,
    CHANGE,
    "Jobs that have not started are cancelled at once. Running jobs are asked to stop: their "
    "worker notices within a heartbeat and stops them (see Cancellation in the docs). "
    "Finished jobs are left alone.",
    report=cancel_message,
)
DELETE = BulkAction(
    "delete_jobs",
    "Delete",
    "deleted",
    operations.delete_jobs,
    DELETION,
    "Running jobs are left alone. Deleted jobs cannot be recovered.",
    always_confirm=True,
    said=("Deleted %(count)d job.", "Deleted %(count)d jobs."),
)


def perform(modeladmin, request, queryset, action: BulkAction):
    """Confirm when needed, run the service on ``queryset``, log it and report the count."""
    across = request.POST.get("select_across") == "1"
    if (across or action.always_confirm) and request.POST.get("confirmed") != "yes":
        return confirmation(modeladmin, request, queryset, action, across)
    jobs = None if across else list(queryset.only("id", "task_path", "status")[: LOG_EACH + 1])
    result = action.service(queryset)
    if jobs and action.flag == DELETION:
        kept = set(queryset.filter(pk__in=[j.pk for j in jobs]).values_list("pk", flat=True))
        jobs = [j for j in jobs if j.pk not in kept]  # log only the jobs really deleted
    message = action.describe(result)
    log(request, action, message, jobs, describe_filter(request) if across else "selection")
    modeladmin.message_user(request, message, messages.SUCCESS)
    return None


def confirmation(modeladmin, request, queryset, action: BulkAction, across: bool):
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"{action.verb} jobs",
        "opts": opts,
        "action": action,
        "count": queryset.count(),
        "across": across,
        "filter": describe_filter(request),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "back": request.get_full_path(),
    }
    return TemplateResponse(request, "admin/django_jobs/job/action_confirmation.html", context)


def describe_filter(request) -> str:
    query = request.GET.urlencode()
    return f"jobs matching {query}" if query else "all jobs"


def log(request, action: BulkAction, message: str, jobs: list | None, scope: str) -> None:
    if jobs is not None and len(jobs) <= LOG_EACH:
        if jobs:
            LogEntry.objects.log_actions(request.user.pk, jobs, action.flag, message)
        return
    LogEntry.objects.create(
        user_id=request.user.pk,
        content_type_id=ContentType.objects.get_for_model(Job).pk,
        object_id=None,
        object_repr=f"{action.verb}: {scope}"[:200],
        action_flag=action.flag,
        change_message=message,
    )


@admin.action(description="Retry selected jobs", permissions=["retry"])
def retry_jobs(modeladmin, request, queryset):
    return perform(modeladmin, request, queryset, RETRY)


@admin.action(description="Cancel selected jobs", permissions=["cancel"])
def cancel_jobs(modeladmin, request, queryset):
    return perform(modeladmin, request, queryset, CANCEL)


@admin.action(description="Delete selected jobs", permissions=["delete"])
def delete_jobs(modeladmin, request, queryset):
    return perform(modeladmin, request, queryset, DELETE)
