"""Bulk INSERT of job rows: PostgreSQL COPY, ``bulk_create`` elsewhere."""

import json
from collections.abc import Sequence

from django.db import connections
from django.db.models import JSONField


def insert_job(database: str, job) -> None:
    """Insert one unsaved Job row; on PostgreSQL with a ready-made INSERT (no ORM compile)."""
    connection = connections[database]
    if connection.vendor != "postgresql":
        job.save(using=database, force_insert=True)
        return
    sql, names, is_json = _insert_sql(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, _row(job, names, is_json))
    job._state.adding = False
    job._state.db = database


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
    return [
        _json(getattr(job, name)) if json_column else getattr(job, name)
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
        # format), JSON columns as their JSON text. Same transaction as the caller.
        with cursor.cursor.copy(f"COPY {Job._meta.db_table} ({columns}) FROM STDIN") as copy:
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
