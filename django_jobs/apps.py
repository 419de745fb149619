from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "django_jobs"
    label = "django_jobs"
    verbose_name = "Background jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing these registers their system checks.
        from django_jobs.beat import sync  # noqa: F401
        from django_jobs.checks import settings, tasks  # noqa: F401
