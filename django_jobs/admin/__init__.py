"""The operations console: job, worker and queue admins, bulk actions and the dashboard."""

# Admin modules that live outside this package are imported here, one line each.
from django_jobs.admin import (  # noqa: F401  (each module registers its ModelAdmins)
    dashboard,
    failures,
    jobs,
    queues,
    schedules,  # noqa: F401, E402
    tasks,
    workers,
    workflows,
)
