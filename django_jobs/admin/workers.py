"""The worker admin: read-only, with workers that stopped heartbeating marked stale."""

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from django_jobs.admin import display
from django_jobs.admin.common import ReadOnlyAdmin, stale_after
from django_jobs.jobs.models import Worker


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = (
        "short_id",
        "host",
        "pid",
        "state",
        "queues_display",
        "slots",
        "started",
        "heartbeat_age",
    )
    list_filter = ("hostname", ("stopped_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "hostname")
    ordering = ("-last_heartbeat_at",)

    class Media:
        css = {"all": ("django_jobs/console.css",)}

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

    @admin.display(description="id", ordering="id")
    def short_id(self, worker: Worker) -> str:
        return format_html('<span title="{}">{}</span>', worker.pk, worker.pk[:8])

    @admin.display(description="host", ordering="hostname")
    def host(self, worker: Worker) -> str:
        name = worker.hostname
        return format_html('<span class="jobs-cut" title="{}">{}</span>', name, name)

    @admin.display(description="queues")
    def queues_display(self, worker: Worker) -> str:
        names = ", ".join(worker.queues) or "all"
        return format_html('<span class="jobs-cut" title="{}">{}</span>', names, names)

    @admin.display(description="slots")
    def slots(self, worker: Worker) -> str:
        title = f"processes: {worker.processes}, job slots in each: {worker.concurrency}"
        return format_html(
            '<span title="{}">{} × {}</span>', title, worker.processes, worker.concurrency
        )

    @admin.display(description="started", ordering="started_at")
    def started(self, worker: Worker) -> str:
        return display.timestamp(worker.started_at)

    @admin.display(description="last heartbeat", ordering="last_heartbeat_at")
    def heartbeat_age(self, worker: Worker) -> str:
        return display.timestamp(worker.last_heartbeat_at)
