"""The operations console: job, worker and queue admins, bulk actions and the dashboard."""

from . import dashboard, jobs, workers  # noqa: F401  (each module registers its ModelAdmins)

# Admin modules that live outside this package are imported here, one line each.
# The schedules admin (django_jobs/admin_schedules.py) goes here at merge:
#     from .. import admin_schedules  # noqa: F401
