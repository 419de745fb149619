from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "django_jobs"
    label = "django_jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, schedule_sync, task_checks  # noqa: F401  (register the checks)
