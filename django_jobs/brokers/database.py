"""Dispatch straight from the job table.

PostgreSQL: one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`` round
trip per claim, and LISTEN/NOTIFY (a trigger notifies on every READY row) to wake workers.
MySQL/MariaDB: SELECT … FOR UPDATE SKIP LOCKED then UPDATE, in one transaction.
SQLite: the same transaction, which ``transaction_mode='IMMEDIATE'`` serialises across
processes; the guarded UPDATE keeps it correct even without that setting.
"""

import logging
import threading
from collections.abc import Sequence
from datetime import datetime

from django.db import connections, transaction

from ..conf import JobsOptions

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "django_jobs"


class DatabaseBroker:
    """Claim jobs from the database; wake on PostgreSQL notifications, else poll."""

    def __init__(self, options: JobsOptions, alias: str = "default"):
        self.options = options
        self.alias = alias
        self.database = options.database
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()

    def publish(self, jobs: Sequence) -> None:
        """Nothing to do: the row is the message (PostgreSQL's trigger notifies on commit)."""

    def claim(self, worker_id: str, queues: Sequence[str], limit: int, now: datetime) -> list:
        candidates = self._ready(queues, now).values("pk")
        return claim_rows(self.database, candidates, worker_id, now, self.options, limit)

    def _ready(self, queues: Sequence[str], now: datetime):
        from ..models import Job

        jobs = Job.objects.using(self.database).ready(now).filter(backend=self.alias)
        if queues:
            jobs = jobs.filter(queue_name__in=queues)
        return jobs.order_by("-priority", "run_after")

    def sweep(self, now: datetime, every: float | None = None) -> int:
        """Nothing to reconcile: the table is the queue."""
        return 0

    def listen(self, wake: threading.Event, queues: Sequence[str] = ()) -> None:
        if connections[self.database].vendor != "postgresql" or self._listener:
            return
        self._listener = threading.Thread(
            target=self._listen, args=(wake,), name="django-jobs-listen", daemon=True
        )
        self._listener.start()

    def _listen(self, wake: threading.Event) -> None:
        import psycopg

        params = _psycopg_params(self.database)
        while not self._closed.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    wake.set()  # anything enqueued while we were not listening
                    while not self._closed.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            wake.set()
            except psycopg.Error as e:
                logger.warning("LISTEN connection lost error=%r; reconnecting", e)
                self._closed.wait(1.0)

    def close(self) -> None:
        self._closed.set()


def claim_rows(
    database: str, candidates, worker_id: str, now: datetime, options: JobsOptions, limit=None
) -> list:
    """Mark the READY rows of ``candidates`` (a ``values("pk")`` queryset) RUNNING for
    ``worker_id`` and return them; rows another claimer holds or took are skipped.

    Shared by both brokers: the Redis broker passes the ids Redis handed out, so an id
    delivered twice is claimed once (the status guard) and a row that is no longer READY is
    simply not returned.
    """
    if connections[database].vendor == "postgresql":
        return _claim_returning(database, candidates, worker_id, now, options, limit)
    return _claim_two_step(database, candidates, worker_id, now, options, limit)


def _claim_returning(database, candidates, worker_id, now, options, limit) -> list:
    from ..models import Job

    # The inner SELECT walks the partial claim index in priority/age order and skips rows
    # another worker has locked, so concurrent claimers never wait on or share a row.
    inner = candidates if limit is None else candidates[:limit]
    inner_sql, inner_params = inner.query.sql_with_params()
    inner_sql += " FOR UPDATE SKIP LOCKED"  # the ORM refuses it outside atomic()
    claim = Job.objects.using(database).filter(pk__in=[])  # compiled for its SET
    set_sql, set_params = _update_set_sql(claim, worker_id, now, options)
    table = Job._meta.db_table
    # Every piece is ORM-compiled SQL with %s placeholders; no value is interpolated.
    sql = f"UPDATE {table} SET {set_sql} WHERE id IN ({inner_sql}) RETURNING *"  # noqa: S608
    return list(Job.objects.using(database).raw(sql, (*set_params, *inner_params)))


def _claim_two_step(database, candidates, worker_id, now, options, limit) -> list:
    from ..models import Job

    with transaction.atomic(using=database):
        locked = candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)
        ids = list(locked if limit is None else locked[:limit])
        if not ids:
            return []
        jobs = Job.objects.using(database).filter(pk__in=ids)
        jobs.claim(worker_id, now, options.lease)
    # ``ids`` were READY under lock, so these are exactly the rows this call claimed.
    return list(jobs.held_by(worker_id))


def _update_set_sql(queryset, worker_id: str, now: datetime, options: JobsOptions):
    """Compile the claim's SET clause with the ORM, so it matches ``JobQuerySet.claim``."""
    from django.db.models.sql.subqueries import UpdateQuery

    from ..models import Job, claim_values

    query = UpdateQuery(Job)
    query.add_update_values(claim_values(worker_id, now, options.lease))
    compiler = query.get_compiler(queryset.db)
    sql, params = compiler.as_sql()
    # "UPDATE table SET a = %s, … WHERE …" → keep only the assignments.
    set_sql = sql.split(" SET ", 1)[1].split(" WHERE ", 1)[0]
    return set_sql, params


def _psycopg_params(alias: str) -> dict:
    params = connections[alias].get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
        params.pop(key, None)
    return params
