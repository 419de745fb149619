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

from django.db import IntegrityError, transaction

from django_jobs.exceptions import InvalidTaskOptions, JobsError

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


def insert(job, database: str, states, now: datetime):
    """Insert ``job`` unless a job holding its key covers it; return that job, or None.

    Runs in a savepoint, so it works inside the caller's transaction.
    """
    from django_jobs.jobs.models import Job

    jobs = Job.objects.using(database)
    error = None
    for _ in range(ATTEMPTS):
        try:
            with transaction.atomic(using=database):
                job.save(using=database, force_insert=True)
            return None
        except IntegrityError as e:
            error = e
            holder = jobs.filter(unique_key=job.unique_key).first()
            if holder is None:
                continue  # the holder's transaction rolled back, or it was just released
            if holder.holds_key(states, now):
                return holder
            jobs.filter(pk=holder.pk, unique_key=job.unique_key).release_key(states, now)
    raise JobsError(f"could not enqueue unique job {job.task_path}: its key kept moving") from error
