"""The tasks pages: every declared task, and a page per task (figures, failures, schedules)."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from django_jobs import registry
from django_jobs.admin import display
from django_jobs.admin.common import database, jobs_backend
from django_jobs.admin.pages import PageAdmin
from django_jobs.beat.models import Schedule
from django_jobs.console import failures, tasks
from django_jobs.console.models import TaskPage


def task_url(task_path: str) -> str:
    return reverse("admin:django_jobs_taskpage_task", args=[task_path])


@admin.register(TaskPage)
class TaskPageAdmin(PageAdmin):
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name="django_jobs_taskpage_changelist"),
            path("<path:task_path>/", view(self.task_view), name="django_jobs_taskpage_task"),
        ]

    def changelist_view(self, request, extra_context=None):
        """Every declared task, and the tasks of schedules (which may no longer be declared)."""
        self.check_view(request)
        backend = jobs_backend()
        registry.autodiscover(backend.jobs_options.task_modules if backend else ())
        scheduled = Schedule.objects.using(database()).values_list("task", flat=True).distinct()
        paths = sorted({*registry.declared(), *scheduled})
        context = {
            **self.page_context(request, _("Tasks")),
            "tasks": [(p, task_url(p)) for p in paths],
        }
        return TemplateResponse(request, "admin/django_jobs/tasks/task_list.html", context)

    def task_view(self, request, task_path: str):
        self.check_view(request)
        db, now = database(), timezone.now()
        options = tasks.options(task_path)
        failed = {"task_path": task_path, "status__exact": "FAILED"}
        jobs_url = reverse("admin:django_jobs_job_changelist")
        failures_url = reverse("admin:django_jobs_failure_changelist")
        context = {
            **self.page_context(request, task_path),
            "task_path": task_path,
            "spans": span_rows(tasks.throughput(db, now, task_path)),
            "latency_rows": latency_rows(tasks.latency(db, now, task_path)),
            "failure_groups": failures.groups(db, now, "day", task_path).groups,
            "recent_failures": tasks.recent_failures(db, now, task_path),
            "schedules": tasks.schedules(db, task_path),
            "options": options,
            "option_rows": [(name, _option(value)) for name, value in (options or {}).items()],
            "jobs_url": f"{jobs_url}?{urlencode({'task_path': task_path})}",
            "failed_url": f"{jobs_url}?{urlencode(failed)}",
            "failures_url": f"{failures_url}?{urlencode({'window': 'day', 'task': task_path})}",
            "list_url": reverse("admin:django_jobs_taskpage_changelist"),
        }
        return TemplateResponse(request, "admin/django_jobs/tasks/task.html", context)


SPAN_LABELS = {"hour": _lazy("Last hour"), "day": _lazy("Last 24 hours")}
KIND_LABELS = {"wait": _lazy("Queue wait"), "run": _lazy("Run time")}


def span_rows(throughput: dict) -> list[dict]:
    """One row per span (hour, day): finished per minute, counts, failure rate, formatted."""
    return [
        {
            **figures,
            "name": name,
            "label": SPAN_LABELS[name],
            "per_minute": f"{figures['per_minute']:.2f}",
            "failure_rate": _rate(figures["failure_rate"]),
        }
        for name, figures in throughput.items()
    ]


def latency_rows(latency: dict) -> list[dict]:
    """Queue wait and run time percentiles, per span, formatted."""
    return [
        {
            "label": f"{KIND_LABELS[kind]}, {str(SPAN_LABELS[span]).lower()}",
            "sample": figures["sample"],
            "values": [display.duration(figures[kind][q]) for q in ("p50", "p90", "p99", "max")],
        }
        for span, figures in latency.items()
        for kind in ("wait", "run")
    ]


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _option(value) -> str:
    if value is None:
        return "–"
    return getattr(value, "__qualname__", None) or str(value)
