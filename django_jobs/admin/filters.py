"""Changelist filters whose choices come from small tables, never from the job history."""

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from django_jobs import registry
from django_jobs.admin.common import database, jobs_backend
from django_jobs.jobs.models import JobMinute, Queue, Worker


class ValueFilter(admin.SimpleListFilter):
    """Filter on one column; subclasses say where the choices come from."""

    field = ""

    def choices_from(self, request) -> dict[str, str]:
        """``{value: label}``."""
        raise NotImplementedError

    def lookups(self, request, model_admin):
        # The changelist builds its filters twice per request: read the tables once.
        cache = request.__dict__.setdefault("_django_jobs_filter_choices", {})
        if self.parameter_name not in cache:
            cache[self.parameter_name] = self.choices_from(request)
        choices = dict(cache[self.parameter_name])
        if self.value():
            choices.setdefault(self.value(), self.value())
        return sorted(choices.items())

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class QueueFilter(ValueFilter):
    title = "queue"
    parameter_name = field = "queue_name"

    def choices_from(self, request) -> dict[str, str]:
        db = database()
        since = timezone.now() - timedelta(days=8)
        recent = (
            JobMinute.objects.using(db)
            .filter(minute__gte=since)
            .exclude(queue_name="")
            .values_list("queue_name", flat=True)
            .distinct()
        )
        names = [*Queue.objects.using(db).values_list("name", flat=True), *recent]
        return {name: name for name in names}


class TaskFilter(ValueFilter):
    title = "task"
    parameter_name = field = "task_path"

    def choices_from(self, request) -> dict[str, str]:
        backend = jobs_backend()
        registry.autodiscover(backend.jobs_options.task_modules if backend else ())
        return {path: path for path in registry.declared()}


class WorkerFilter(ValueFilter):
    title = "worker"
    parameter_name = field = "claimed_by"

    def choices_from(self, request) -> dict[str, str]:
        workers = Worker.objects.using(database()).order_by("-last_heartbeat_at")[:30]
        return {w.pk: f"{w} ({w.pk[:8]})" for w in workers}
