"""The operations console: job, worker and queue admins, bulk actions and the dashboard."""

from . import dashboard, jobs, workers  # noqa: F401  (each module registers its ModelAdmins)

# Other admin modules of the app are imported here, one line each.
