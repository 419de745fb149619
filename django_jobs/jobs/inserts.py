"""The one way job rows are written new: one row, many rows (COPY on PostgreSQL), a unique
job (``insert_unique``), a workflow's steps (``insert_workflow``)."""

import json
from collections.abc import Sequence
from datetime import datetime

from django.db import IntegrityError, connections, transaction
from django.db.models import JSONField

from django_jobs.exceptions import JobsError
from django_jobs.jobs.unique import ATTEMPTS


def insert_job(database: str, job) -> None:
    """Insert one unsaved Job row; on PostgreSQL with a ready-made INSERT (no ORM compile)."""
    connection = connections[database]
    if connection.vendor != "postgresql":
        job.save(using=database, force_insert=True)
        return
    sql, names, is_json = _insert_sql(connection)
    with _binding_cursor(connection) as cursor:
        cursor.execute(sql, _row(job, names, is_json))
    job._state.adding = False
    job._state.db = database


def _binding_cursor(connection):
    """A cursor of ``connection`` that sends the values apart from the statement (psycopg 3).

    Django's default cursor quotes every value into the SQL text on the client, which costs
    more Python than the rest of the INSERT; the server binds them instead. The cursor is
    wrapped as Django wraps its own (query log, execute wrappers, error translation), and
    whether psycopg prepares the statement stays the connection's ``prepare_threshold``
    (Django's default: never, for connection poolers).
    """
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if not is_psycopg3:
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = ServerBindingCursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(cursor)
    return connection.make_cursor(cursor)


def _insert_sql(connection):
    from django_jobs.jobs.models import Job

    global _INSERT
    if _INSERT is None:
        fields = Job._meta.concrete_fields
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {Job._meta.db_table} ({columns}) VALUES ({placeholders})"  # noqa: S608
        _INSERT = sql, [f.attname for f in fields], [isinstance(f, JSONField) for f in fields]
    return _INSERT


_INSERT = None


def _row(job, names, is_json) -> list:
    values = job.__dict__  # every concrete field's attname is set on a new_job() row
    return [
        _json(values[name]) if json_column else values[name]
        for name, json_column in zip(names, is_json, strict=True)
    ]


def insert_jobs(database: str, jobs: Sequence, batch_size: int = 1000) -> None:
    """Insert unsaved Job rows in the current transaction, as fast as the database allows."""
    from django_jobs.jobs.models import Job

    if not jobs:
        return
    connection = connections[database]
    if connection.vendor != "postgresql":
        Job.objects.using(database).bulk_create(jobs, batch_size=batch_size)
        return
    fields = Job._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    _, names, is_json = _insert_sql(connection)
    with connection.cursor() as cursor:
        # COPY streams every row in one command; the values are adapted by psycopg (text
        # format), JSON columns as their JSON text. Same transaction as the caller. Through
        # Django's wrapper, so that the query log (CaptureQueriesContext) sees it.
        with cursor.copy(f"COPY {Job._meta.db_table} ({columns}) FROM STDIN") as copy:
            for job in jobs:
                copy.write_row(_row(job, names, is_json))
    for job in jobs:
        job._state.adding = False
        job._state.db = database


def _json(value):
    if value is None:
        return None
    if not value and isinstance(value, list | dict):
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(value)


def insert_succeeded(database: str, jobs: Sequence, now: datetime, values: Sequence) -> None:
    """Insert jobs that already ran, SUCCESSFUL with ``values`` (a benchmark's long history)."""
    from django_jobs.jobs.status import JobStatus

    for job, value in zip(jobs, values, strict=True):
        job.status, job.finished_at, job.return_value = JobStatus.SUCCESSFUL, now, value
    insert_jobs(database, jobs)


def insert_workflow(database: str, workflow, jobs: Sequence) -> list:
    """Insert a workflow and its steps in one transaction; return the steps that are READY.

    A step waiting for others starts BLOCKED (no claim sees it) until they end.
    """
    from django_jobs.jobs.status import JobStatus

    for job in jobs:
        job.workflow = workflow
        job.status = JobStatus.BLOCKED if job.waiting_on else JobStatus.READY
    with transaction.atomic(using=database):
        workflow.save(using=database, force_insert=True)
        insert_jobs(database, jobs)
    return [job for job in jobs if job.status == JobStatus.READY]


def insert_unique(job, database: str, states, now: datetime):
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
