"""Dispatch straight from the job table.

PostgreSQL: one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`` round
trip per claim, and LISTEN/NOTIFY (a trigger notifies on every READY row) to wake workers.
MySQL/MariaDB: SELECT … FOR UPDATE SKIP LOCKED then UPDATE, in one transaction.
SQLite: the same transaction, which ``transaction_mode='IMMEDIATE'`` serialises across
processes; the guarded UPDATE keeps it correct even without that setting.
"""

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from functools import cache

from django.db import connections, transaction
from django.db.models import JSONField
from django.db.models.base import ModelState

from django_jobs.conf import JobsOptions
from django_jobs.db.writes import relax_commits, serialized_writes
from django_jobs.jobs.limits import GatedClaims

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "django_jobs"


@cache
def _returned_fields() -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """Every Job column (RETURNING them all), their attribute names, and the positions of
    the JSON ones."""
    from django_jobs.jobs.models import Job

    fields = Job._meta.concrete_fields
    columns = tuple(f.column for f in fields)
    attnames = tuple(f.attname for f in fields)
    json_indexes = tuple(n for n, f in enumerate(fields) if isinstance(f, JSONField))
    return columns, attnames, json_indexes


# One round trip: the inner SELECT walks a partial claim index in priority/age order and skips
# rows other workers hold locked, so concurrent claimers never wait on or share a row; the
# UPDATE makes the claim an attempt. The SELECT comes in three shapes so that it always follows
# an index order instead of sorting every ready row (which costs ~25 ms at 40k ready jobs).
# The lease runs out by the database's clock (STATEMENT_TIMESTAMP), never a worker host's.
_CLAIM = """\
UPDATE django_jobs_job SET
    status = 'RUNNING',
    attempts = attempts + 1,
    claimed_by = %(worker)s,
    lease_expires_at = STATEMENT_TIMESTAMP() + %(lease)s,
    started_at = COALESCE(started_at, %(now)s),
    last_attempted_at = %(now)s,
    worker_ids = worker_ids || jsonb_build_array(%(worker_json)s::jsonb)
WHERE id IN ({select})
RETURNING {columns}
"""
_READY = """\
SELECT id{extra} FROM django_jobs_job
WHERE status = 'READY' AND limit_key IS NULL AND backend = %(backend)s{queue}
    AND run_after <= %(now)s
ORDER BY priority DESC, run_after
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED"""
#: Every queue of the backend: index django_jobs_job_claim_any.
_READY_ANY = _READY.format(extra="", queue="")
#: Every queue but the paused ones.
_READY_ANY_UNPAUSED = _READY.format(extra="", queue=" AND queue_name <> ALL(%(paused)s)")
#: One queue: index django_jobs_job_claim, equality on the queue.
_READY_ONE = _READY.format(extra="", queue=" AND queue_name = %(queue)s")
#: Several queues: the head of each queue's index, merged.
_READY_MANY = """\
SELECT head.id FROM unnest(%(queues)s::text[]) AS queue(name), LATERAL ({per_queue}) AS head
ORDER BY head.priority DESC, head.run_after
LIMIT %(limit)s""".format(  # noqa: S608 (constant SQL, values are parameters)
    per_queue=_READY.format(extra=", priority, run_after", queue=" AND queue_name = queue.name")
)
#: Given ids, still READY.
_READY_IDS = """\
SELECT id FROM django_jobs_job
WHERE id = ANY(%(ids)s::uuid[]) AND status = 'READY' AND limit_key IS NULL
    AND backend = %(backend)s AND run_after <= %(now)s
FOR UPDATE SKIP LOCKED"""
_SELECTS = {
    "any": _READY_ANY,
    "any_unpaused": _READY_ANY_UNPAUSED,
    "one": _READY_ONE,
    "many": _READY_MANY,
    #: Ids handed out by the Redis broker.
    "ids": _READY_IDS,
}


@cache
def claim_sql(shape: str) -> str:
    """The claim statement for one shape of queue selection."""
    columns = ", ".join(_returned_fields()[0])
    return _CLAIM.format(select=_SELECTS[shape], columns=columns)


class DatabaseBroker:
    """Claim jobs from the database; wake on PostgreSQL notifications, else poll."""

    note = ""

    def __init__(self, options: JobsOptions, alias: str = "default"):
        self.options = options
        self.alias = alias
        self.database = options.database
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()
        #: Paused queue names, refreshed by the worker's heartbeat: no query per claim.
        self.paused: frozenset[str] = frozenset()
        vendor = connections[self.database].vendor
        #: How long the worker may sleep when no NOTIFY wakes it.
        self.poll_interval = options.poll_interval_for(vendor, pushed=False)
        self.gated = GatedClaims(self.database, alias, self.poll_interval)
        self._idle = False

    def publish(self, jobs: Sequence) -> None:
        """Nothing to do: the row is the message (PostgreSQL's trigger notifies on commit)."""

    def set_paused(self, queues: frozenset[str]) -> None:
        self.paused = frozenset(queues)

    def claim(self, worker_id: str, queues: Sequence[str], limit: int, now: datetime) -> list:
        if queues and self.paused:
            queues = [queue for queue in queues if queue not in self.paused]
            if not queues:
                return []
        connection = connections[self.database]
        if connection.vendor == "postgresql":
            jobs = self._claim_returning(worker_id, queues, limit, now)
        elif connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
            # An idle SQLite worker looks before it takes the database's one write lock.
            if self._idle and not self._ready(queues, now).exists():
                jobs = []
            else:
                jobs = self._claim_sqlite(worker_id, queues, limit, now)
            self._idle = not jobs
        else:
            jobs = self._claim_two_step(worker_id, queues, limit, now)
        # Jobs of tasks with limits are claimed apart: see ``gates``.
        return self.gated.top_up(
            jobs, worker_id, queues, self.paused, limit, now, self.options.lease
        )

    def _ready(self, queues: Sequence[str], now: datetime):
        from django_jobs.jobs.models import Job

        jobs = Job.objects.using(self.database).ready(now).filter(backend=self.alias)
        jobs = jobs.filter(limit_key__isnull=True)
        if queues:
            jobs = jobs.filter(queue_name__in=queues)
        if self.paused:
            jobs = jobs.exclude(queue_name__in=self.paused)
        return jobs.order_by("-priority", "run_after")

    def sweep(self, now: datetime, every: float | None = None) -> int:
        """Nothing to reconcile: the table is the queue."""
        return 0

    def _claim_returning(self, worker_id, queues, limit, now) -> list:
        from django_jobs.jobs.models import Job

        params = {
            "worker": worker_id,
            "worker_json": json.dumps(worker_id),
            "now": now,
            "lease": self.options.lease,
            "backend": self.alias,
            "queues": list(queues),
            "queue": queues[0] if queues else None,
            "paused": sorted(self.paused),
            "limit": limit,
        }
        if not queues:
            shape = "any_unpaused" if self.paused else "any"
        else:
            shape = "one" if len(queues) == 1 else "many"
        if self.options.relaxed_commits:
            relax_commits(self.database)
        with connections[self.database].cursor() as cursor:
            cursor.execute(claim_sql(shape), params)
            rows = cursor.fetchall()
        return [_job_from_row(Job, self.database, row) for row in rows]

    def _claim_sqlite(self, worker_id, queues, limit, now) -> list:
        """SQLite >= 3.35: one UPDATE … RETURNING inside the IMMEDIATE transaction."""
        from django_jobs.jobs.models import Job

        connection = connections[self.database]
        inner, inner_params = self._ready(queues, now).values("pk")[:limit].query.sql_with_params()
        columns = ", ".join(_returned_fields()[0])
        at = connection.ops.adapt_datetimefield_value
        sql = (
            f"UPDATE {Job._meta.db_table} SET status = 'RUNNING', "  # noqa: S608
            "attempts = attempts + 1, claimed_by = %s, "
            "lease_expires_at = STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s), "
            "started_at = COALESCE(started_at, %s), last_attempted_at = %s, "
            "worker_ids = json_insert(worker_ids, '$[#]', %s) "
            f"WHERE id IN ({inner}) RETURNING {columns}"
        )
        # The lease runs out by SQLite's clock (this host's, as for every worker on the file).
        lease = f"+{self.options.lease_seconds} seconds"
        params = [worker_id, lease, at(now), at(now), worker_id]
        with serialized_writes(self.database), transaction.atomic(using=self.database):
            with connection.cursor() as cursor:
                cursor.execute(sql, [*params, *inner_params])
                rows = cursor.fetchall()
        return [_job_from_converted_row(Job, connection, row) for row in rows]

    def _claim_two_step(self, worker_id, queues, limit, now) -> list:
        candidates = self._ready(queues, now).values("pk")
        return _claim_two_step(self.database, candidates, worker_id, now, self.options, limit)

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


def _job_from_row(model, database: str, row):
    """A Job from a RETURNING row, without ``Model.__init__`` (the claim's hot path)."""
    _, attnames, json_indexes = _returned_fields()
    values = list(row)
    for index in json_indexes:
        if isinstance(values[index], str):
            values[index] = json.loads(values[index])
    job = model.__new__(model)
    job._state = ModelState()
    job._state.adding = False
    job._state.db = database
    job.__dict__.update(zip(attnames, values, strict=True))
    return job


def _job_from_converted_row(model, connection, row):
    """A Job from a raw row, through the same converters a queryset would apply."""
    values = [
        _convert(value, converters, column, connection)
        for value, (converters, column) in zip(row, _converters(connection), strict=True)
    ]
    job = model.__new__(model)
    job._state = ModelState()
    job._state.adding = False
    job._state.db = connection.alias
    job.__dict__.update(zip(_returned_fields()[1], values, strict=True))
    return job


def _convert(value, converters, column, connection):
    for converter in converters:
        value = converter(value, column, connection)
    return value


_CONVERTERS: dict[str, list] = {}


def _converters(connection) -> list:
    if connection.alias not in _CONVERTERS:
        from django.db.models.expressions import Col

        from django_jobs.jobs.models import Job

        converters = []
        for field in Job._meta.concrete_fields:
            column = Col(Job._meta.db_table, field)
            found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
            converters.append((found, column))
        _CONVERTERS[connection.alias] = converters
    return _CONVERTERS[connection.alias]


def claim_ids(database: str, alias: str, ids: Sequence[str], worker_id: str, now, options) -> list:
    """Claim the given job ids (handed out by Redis) that are still READY; skip the rest.

    An id delivered twice is claimed once (the status guard), and a row that is no longer
    READY is simply not returned.
    """
    from django_jobs.jobs.models import Job

    connection = connections[database]
    if connection.vendor == "postgresql":
        if options.relaxed_commits:
            relax_commits(database)
        params = {
            "worker": worker_id,
            "worker_json": json.dumps(worker_id),
            "now": now,
            "lease": options.lease,
            "backend": alias,
            "ids": list(ids),
        }
        with connection.cursor() as cursor:
            cursor.execute(claim_sql("ids"), params)
            rows = cursor.fetchall()
        return [_job_from_row(Job, database, row) for row in rows]
    candidates = (
        Job.objects.using(database)
        .ready(now)
        .filter(backend=alias, pk__in=ids, limit_key__isnull=True)
        .values("pk")
    )
    return _claim_two_step(database, candidates, worker_id, now, options, None)


def _claim_two_step(database, candidates, worker_id, now, options, limit) -> list:
    from django_jobs.jobs.models import Job

    with serialized_writes(database), transaction.atomic(using=database):
        locked = candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)
        ids = list(locked if limit is None else locked[:limit])
        if not ids:
            return []
        jobs = Job.objects.using(database).filter(pk__in=ids)
        jobs.claim(worker_id, now, options.lease)
        # ``ids`` were READY under lock, so these are exactly the rows this call claimed. Read
        # them before the commit: a failure after it would leave them RUNNING, never run.
        return list(jobs.held_by(worker_id))


def _psycopg_params(alias: str) -> dict:
    params = connections[alias].get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
        params.pop(key, None)
    return params
