"""The console pages' entries in the admin index (proxies: no tables of their own)."""

from django_jobs.jobs.models import Queue


class Dashboard(Queue):
    """No table of its own: gives the operations dashboard its entry in the admin index."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"


class Failure(Queue):
    """No table of its own: gives the failures page (failed jobs grouped) its index entry."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = "failure"
        verbose_name_plural = "failures"


class TaskPage(Queue):
    """No table of its own: gives the tasks pages (one per declared task) their index entry."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = "task"
        verbose_name_plural = "tasks"
