"""The operations dashboard's entry in the admin index (a proxy: no table of its own)."""

from django_jobs.jobs.models import Queue


class Dashboard(Queue):
    """No table of its own: gives the operations dashboard its entry in the admin index."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
