"""The operations console: job, worker and queue admins, bulk actions and the dashboard."""

# Admin modules that live outside this package are imported here, one line each.
from .. import admin_schedules  # noqa: F401, E402
from . import dashboard, jobs, workers  # noqa: F401  (each module registers its ModelAdmins)
