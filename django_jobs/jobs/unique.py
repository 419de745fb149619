"""Unique jobs: at most one job per key while a job holds it, enforced by a unique index.

A job holds its key (``Job.unique_key``) from enqueue on. The key is released lazily: when an
enqueue hits the index, it looks at the holder and, if the holder no longer covers the call
(out of the call's ``unique_states`` and past its ``unique_until``), clears the holder's key
with a guarded UPDATE and inserts again. The index decides every race, so concurrent enqueues
leave exactly one job, and nothing is added to the worker's claim or completion queries.
"""

import hashlib
import json
from datetime import datetime, timedelta

from django_jobs.exceptions import InvalidTaskOptions

#: Inserts tried before giving up (each failure means another transaction moved the key).
ATTEMPTS = 5


def job_key(task, args, kwargs, backend: str) -> str | None:
    """The hashed unique key of a call, or None when the task is not unique."""
    if not task.unique:
        return None
    key = task.unique_key
    if callable(key):
        key = key(list(args), dict(kwargs))
    elif key is None:
        key = json.dumps([list(args), dict(kwargs)], sort_keys=True, separators=(",", ":"))
    if not isinstance(key, str):
        raise InvalidTaskOptions(f"unique_key of {task.module_path} returned {key!r}, not a str.")
    return hashlib.sha256(f"{backend}\n{task.module_path}\n{key}".encode()).hexdigest()


def key_until(task, now: datetime) -> datetime | None:
    return now + timedelta(seconds=task.unique_for) if task.unique_for else None
