"""Helpers for your own test suite: assert what was enqueued, run jobs in the test's thread.

```python
from django_jobs.testing import assert_enqueued, run_jobs, run_schedules

def test_signup_sends_the_welcome_email(self):
    signup("ada@example.com")
    assert_enqueued(send_welcome, "ada@example.com")
    run_jobs()
```

Jobs run through the worker's own path (``jobs.claims`` to claim, ``worker.execution`` to run,
``worker.outcomes`` to record), so retries, workflow steps and signals behave as in a worker.
See ``docs/testing.md``.
"""

from django_jobs.testing.assertions import assert_enqueued, assert_not_enqueued, enqueued_jobs
from django_jobs.testing.runner import (
    JobsTestMixin,
    Run,
    StillRunnable,
    fire_schedules,
    run_jobs,
    run_schedules,
)

__all__ = [
    "JobsTestMixin",
    "Run",
    "StillRunnable",
    "assert_enqueued",
    "assert_not_enqueued",
    "enqueued_jobs",
    "fire_schedules",
    "run_jobs",
    "run_schedules",
]
