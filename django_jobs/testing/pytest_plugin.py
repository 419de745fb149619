"""The ``jobs`` pytest fixture: ``jobs.run()``, ``jobs.assert_enqueued(task, *args)``, ….

Registered by django-jobs' ``pytest11`` entry point, so installing the package provides the
fixture; or load it by name: ``pytest -p django_jobs.testing.pytest_plugin``, or
``pytest_plugins = ["django_jobs.testing.pytest_plugin"]`` in the root conftest. pytest loads
plugins before Django is set up, so this module imports the helpers only when used.
"""

import pytest


class Jobs:
    """The testing helpers, bound to one backend alias."""

    def __init__(self, backend: str = "default"):
        self.backend = backend

    def run(self, **options):
        """Run due jobs in this thread until none is due (see ``testing.run_jobs``)."""
        from django_jobs.testing import run_jobs

        return run_jobs(backend=self.backend, **options)

    def run_schedules(self, now=None, **options):
        """Fire the schedules due at ``now``, then run jobs (see ``testing.run_schedules``)."""
        from django_jobs.testing import run_schedules

        return run_schedules(now, backend=self.backend, **options)

    def fire_schedules(self, now=None, **options) -> list[str]:
        """Fire the schedules due at ``now``; return their job ids."""
        from django_jobs.testing import fire_schedules

        return fire_schedules(now, backend=self.backend, **options)

    def enqueued(self, task=None, **filters) -> list:
        """The jobs enqueued (of ``task``), oldest first."""
        from django_jobs.testing import enqueued_jobs

        return enqueued_jobs(task, backend=self.backend, **filters)

    def assert_enqueued(self, task, *args, **kwargs):
        """Assert ``task`` was enqueued with exactly these arguments; return its job."""
        from django_jobs.testing import assert_enqueued

        return assert_enqueued(task, *args, **kwargs)

    def assert_not_enqueued(self, task) -> None:
        """Assert no job of ``task`` was enqueued."""
        from django_jobs.testing import assert_not_enqueued

        assert_not_enqueued(task)


@pytest.fixture
def jobs(db) -> Jobs:
    """django-jobs' test helpers on the default backend (with database access: ``db``)."""
    return Jobs()
