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

#: Where each public name lives. Imported on first use: pytest loads the plugin module of this
#: package (``django_jobs.testing.pytest_plugin``) before Django is set up, so importing the
#: package must not import models.
_EXPORTS = {
    "assert_enqueued": "assertions",
    "assert_not_enqueued": "assertions",
    "enqueued_jobs": "assertions",
    "JobsTestMixin": "runner",
    "Run": "runner",
    "StillRunnable": "runner",
    "fire_schedules": "runner",
    "run_jobs": "runner",
    "run_schedules": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
