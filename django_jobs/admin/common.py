"""What every console page shares: which backend and database it reads, read-only admins."""

from datetime import timedelta

from django.contrib import admin

from django_jobs.backend import default_jobs_backend as jobs_backend


def database() -> str:
    backend = jobs_backend()
    return backend.jobs_options.database if backend else "default"


def stale_after() -> timedelta:
    """A worker silent for longer than a lease has lost its jobs: it is marked stale."""
    backend = jobs_backend()
    return backend.jobs_options.lease if backend else timedelta(minutes=1)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by workers and services only: viewable, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).using(database())
