"""The worker admin: read-only, with workers that stopped heartbeating marked stale.

The list shows each worker's heartbeat age and how many jobs it runs (one grouped query over
the lease index for the workers on the page); a worker's page lists the jobs it runs now and
the ones it finished last (each a short range of an index).
"""

from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_jobs.admin import display
from django_jobs.admin.common import ReadOnlyAdmin, stale_after
from django_jobs.jobs.models import Job, Worker
from django_jobs.jobs.status import FINISHED, JobStatus

#: Jobs listed on a worker's page: running now, and finished most recently.
RUNNING_SHOWN = 50
RECENT_SHOWN = 20


def running_counts(database: str, worker_ids: list[str]) -> dict[str, int]:
    """``{worker id: jobs it runs}`` for these workers: one query on the lease index."""
    if not worker_ids:
        return {}
    return dict(
        Job.objects.using(database)
        .running()
        .filter(claimed_by__in=worker_ids)
        .values_list("claimed_by")
        .annotate(n=Count("pk"))
        .order_by()
    )


def running_jobs(worker: Worker) -> list[Job]:
    """The jobs ``worker`` holds now, longest running first (the lease index)."""
    return list(
        Job.objects.using(worker._state.db)
        .running()
        .filter(claimed_by=worker.pk)
        .order_by("last_attempted_at")
        .only("id", "task_path", "status", "queue_name", "attempts", "last_attempted_at")[
            :RUNNING_SHOWN
        ]
    )


def recent_jobs(worker: Worker) -> list[Job]:
    """The jobs ``worker`` finished last, newest first.

    One query per finished status, each walking the ``(status, finished_at)`` index backwards
    from the worker's stop (or now) to its start, and stopping at ``RECENT_SHOWN`` rows.
    """
    jobs = Job.objects.using(worker._state.db).filter(
        claimed_by=worker.pk,
        finished_at__gte=worker.started_at,
        finished_at__lte=worker.stopped_at or timezone.now(),
    )
    fields = ("id", "task_path", "status", "queue_name", "attempts", "finished_at")
    found = [
        job
        for status in sorted(FINISHED)
        for job in jobs.filter(status=status).order_by("-finished_at").only(*fields)[:RECENT_SHOWN]
    ]
    return sorted(found, key=lambda job: job.finished_at, reverse=True)[:RECENT_SHOWN]


def job_table(jobs: list[Job], when: str, now) -> str:
    """A small table of jobs, each linking to its page; ``when`` names the time column."""
    if not jobs:
        return "–"
    rows = format_html_join(
        "",
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
        "<td>{}</td></tr>",
        (
            (
                reverse("admin:django_jobs_job_change", args=[quote(job.pk)]),
                str(job.pk)[:8],
                job.task_path,
                display.status_badge(job.status),
                job.queue_name,
                job.attempts,
                since(getattr(job, when), now),
            )
            for job in jobs
        ),
    )
    head = format_html(
        "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        _("job"),
        _("task"),
        _("status"),
        _("queue"),
        _("attempt"),
        _("started") if when == "last_attempted_at" else _("finished"),
    )
    return format_html(
        '<table class="jobs-table"><thead>{}</thead><tbody>{}</tbody></table>', head, rows
    )


def since(moment, now) -> str:
    """'12 s ago', the exact second on hover."""
    if moment is None:
        return "–"
    return format_html(
        '<span class="jobs-heartbeat" title="{}">{}</span>',
        display.exact(moment),
        display.ago(moment, now),
    )


class WorkerChangeList(ChangeList):
    """Counts the running jobs of the workers on the page once, after the page is read."""

    def get_results(self, request):
        super().get_results(request)
        ids = [worker.pk for worker in self.result_list]
        counts = running_counts(self.queryset.db, ids)
        for worker in self.result_list:
            worker.running_count = counts.get(worker.pk, 0)


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = (
        "worker_display",
        "state",
        "queues_display",
        "running_display",
        "jobs_link",
        "heartbeat_age",
    )
    list_display_links = ("worker_display",)
    list_filter = ("hostname", ("stopped_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "hostname")
    ordering = ("-last_heartbeat_at",)
    fieldsets = (
        (None, {"fields": ("id", "state", "hostname", "pid", "backend", "queues_display")}),
        (
            _("Capacity"),
            {"fields": ("processes", "concurrency", "running_display", "jobs_link")},
        ),
        (_("Lifetime"), {"fields": ("started_at", "heartbeat_age", "stopped_at", "note")}),
        (_("Jobs"), {"fields": ("running_jobs_display", "recent_jobs_display")}),
    )

    class Media:
        css = {"all": ("django_jobs/console.css",)}

    def get_changelist(self, request, **kwargs):
        return WorkerChangeList

    @admin.display(description="worker", ordering="hostname")
    def worker_display(self, worker: Worker) -> str:
        """host:pid, the full id on hover (it is on the worker's page too)."""
        return format_html('<span title="{}">{}</span>', worker.pk, worker)

    @admin.display(description="started", ordering="started_at")
    def started_display(self, worker: Worker) -> str:
        return since(worker.started_at, timezone.now())

    @admin.display(description="state")
    def state(self, worker: Worker) -> str:
        if worker.note and not worker.stopped_at:  # e.g. Redis unreachable: polling the database
            return format_html(
                '{} <span class="jobs-note">{}</span>', self.badge(worker), worker.note
            )
        return self.badge(worker)

    def badge(self, worker: Worker) -> str:
        if worker.stopped_at:
            return format_html(
                '<span class="jobs-status jobs-status-cancelled">{}</span>', "stopped"
            )
        if worker.last_heartbeat_at < timezone.now() - stale_after():
            return format_html('<span class="jobs-status jobs-status-failed">{}</span>', "stale")
        return format_html('<span class="jobs-status jobs-status-successful">{}</span>', "live")

    @admin.display(description="queues")
    def queues_display(self, worker: Worker) -> str:
        return ", ".join(worker.queues) or "all"

    @admin.display(description="heartbeat", ordering="last_heartbeat_at")
    def heartbeat_age(self, worker: Worker) -> str:
        return since(worker.last_heartbeat_at, timezone.now())

    @admin.display(description="running")
    def running_display(self, worker: Worker) -> str:
        """Jobs it runs / its concurrency, linking to those jobs."""
        count = getattr(worker, "running_count", None)
        if count is None:  # the worker's page: one count of its own
            count = running_counts(worker._state.db, [worker.pk]).get(worker.pk, 0)
        query = urlencode({"claimed_by": worker.pk, "status__exact": JobStatus.RUNNING})
        return format_html(
            '<a href="{}?{}" title="{}">{} / {}</a>',
            reverse("admin:django_jobs_job_changelist"),
            query,
            ngettext(
                "%(count)d job running, %(concurrency)d at most",
                "%(count)d jobs running, %(concurrency)d at most",
                count,
            )
            % {"count": count, "concurrency": worker.concurrency},
            count,
            worker.concurrency,
        )

    @admin.display(description="jobs")
    def jobs_link(self, worker: Worker) -> str:
        """Every job it ran that no other worker ran since (the job list's worker filter)."""
        query = urlencode({"claimed_by": worker.pk})
        url = reverse("admin:django_jobs_job_changelist")
        return format_html('<a href="{}?{}">{}</a>', url, query, _("its jobs"))

    @admin.display(description="running now")
    def running_jobs_display(self, worker: Worker) -> str:
        return job_table(running_jobs(worker), "last_attempted_at", timezone.now())

    @admin.display(description="finished last")
    def recent_jobs_display(self, worker: Worker) -> str:
        return job_table(recent_jobs(worker), "finished_at", timezone.now())
