"""Changelist filters whose choices come from small tables, never from the job history."""

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from .. import registry
from ..models import JobMinute, Queue, Worker
from .common import database, jobs_backend


class ValueFilter(admin.SimpleListFilter):
    """Filter on one column; subclasses say where the choices come from."""

    field = ""

    def choices_from(self, request) -> list[str]:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        values = set(self.choices_from(request))
        if self.value():
            values.add(self.value())
        return [(v, self.label(v)) for v in sorted(values)]

    def label(self, value: str) -> str:
        return value

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class QueueFilter(ValueFilter):
    title = "queue"
    parameter_name = field = "queue_name"

    def choices_from(self, request) -> list[str]:
        db = database()
        since = timezone.now() - timedelta(days=8)
        recent = (
            JobMinute.objects.using(db)
            .filter(minute__gte=since)
            .exclude(queue_name="")
            .values_list("queue_name", flat=True)
            .distinct()
        )
        return [*Queue.objects.using(db).values_list("name", flat=True), *recent]


class TaskFilter(ValueFilter):
    title = "task"
    parameter_name = field = "task_path"

    def choices_from(self, request) -> list[str]:
        backend = jobs_backend()
        registry.autodiscover(backend.jobs_options.task_modules if backend else ())
        return registry.declared()


class WorkerFilter(ValueFilter):
    title = "worker"
    parameter_name = field = "claimed_by"

    def choices_from(self, request) -> list[str]:
        self.names = {
            w.pk: f"{w} ({w.pk[:8]})"
            for w in Worker.objects.using(database()).order_by("-last_heartbeat_at")[:30]
        }
        return list(self.names)

    def label(self, value: str) -> str:
        return getattr(self, "names", {}).get(value, value)
