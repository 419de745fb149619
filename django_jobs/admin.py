"""Read-only admin pages for jobs and workers (operator actions come with the console)."""

from django.contrib import admin

from . import admin_schedules  # noqa: F401  (registers ScheduleAdmin)
from .models import Job, Worker


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = (
        "task_path",
        "status",
        "queue_name",
        "priority",
        "attempts",
        "enqueued_at",
        "finished_at",
    )
    list_filter = ("status", "queue_name", "backend")
    search_fields = ("id", "task_path")
    date_hierarchy = "enqueued_at"
    ordering = ("-enqueued_at",)
    show_full_result_count = False  # COUNT(*) over a long history is slow


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "hostname",
        "pid",
        "concurrency",
        "started_at",
        "last_heartbeat_at",
        "stopped_at",
    )
    list_filter = ("hostname",)
