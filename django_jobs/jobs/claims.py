"""The claim of each database vendor: READY → RUNNING for one worker, rows handed back.

PostgreSQL: one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`` round
trip. SQLite ≥ 3.35: one ``UPDATE … RETURNING`` inside the IMMEDIATE transaction.
MySQL/MariaDB (and older SQLite): SELECT … FOR UPDATE SKIP LOCKED, then the ORM claim, in one
transaction. Every shape writes the columns of ``transitions.claimed`` and selects the rows of
``JobQuerySet.claimable``, compiled for the vendor: neither is written out here.
"""

import json
import logging
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache, lru_cache

from django.db import DatabaseError, InterfaceError, connections, transaction
from django.db.models import JSONField
from django.db.models.base import ModelState

from django_jobs.db.prepared import fetch_prepared
from django_jobs.db.reconnect import call_reconnecting
from django_jobs.db.transient import is_transient
from django_jobs.db.writes import relax_commits, serialized_writes
from django_jobs.jobs.models import Job
from django_jobs.jobs.transitions import NOW_STAND_IN, claimed, set_clause

logger = logging.getLogger(__name__)

TABLE = Job._meta.db_table

# The inner SELECT walks a partial claim index in priority/age order and skips rows other
# workers hold locked, so concurrent claimers never wait on or share a row. It comes in several
# shapes so that it always follows an index order instead of sorting every ready row (which
# costs ~25 ms at 40k ready jobs). ``{ready}`` is ``JobQuerySet.claimable``.
# (Constant SQL: the values are all parameters.)
_READY = (
    f"SELECT id{{extra}} FROM {TABLE} WHERE {{ready}}{{queue}} "  # noqa: S608
    "ORDER BY priority DESC, run_after LIMIT %s FOR UPDATE SKIP LOCKED"
)
_SELECTS = {
    #: Every queue of the backend: index django_jobs_job_claim_any.
    "any": _READY.format(extra="", ready="{ready}", queue=""),
    #: Every queue but the paused ones.
    "any_unpaused": _READY.format(extra="", ready="{ready}", queue=" AND queue_name <> ALL(%s)"),
    #: One queue: index django_jobs_job_claim, equality on the queue.
    "one": _READY.format(extra="", ready="{ready}", queue=" AND queue_name = %s"),
    #: Several queues: the head of each queue's index, merged.
    "many": "SELECT head.id FROM unnest(%s::text[]) AS queue(name), LATERAL ({per_queue}) AS head "
    "ORDER BY head.priority DESC, head.run_after LIMIT %s".replace(
        "{per_queue}",
        _READY.format(
            extra=", priority, run_after", ready="{ready}", queue=" AND queue_name = queue.name"
        ),
    ),
}

#: Given ids (handed out by the Redis broker), still READY. The rows are locked by primary key
#: and tested for readiness afterwards: with ``{ready}`` beside ``id = ANY(…)`` the planner
#: walked the claim index whenever its statistics said few jobs were READY (a burst of
#: enqueues, until autovacuum analyzes the table), filtering the whole backlog on every claim.
_BY_IDS = (
    f"WITH locked AS MATERIALIZED (SELECT id AS locked_id, ({{ready}}) AS is_ready "  # noqa: S608
    f"FROM {TABLE} WHERE id = ANY(%s::uuid[]) FOR UPDATE SKIP LOCKED) "
    f"UPDATE {TABLE} SET {{columns}} FROM locked WHERE id = locked_id AND is_ready "
    "RETURNING {returning}"
)


def claim_ready(
    database: str,
    backend: str,
    queues: Sequence[str],
    paused: frozenset[str],
    worker_id: str,
    limit: int,
    now: datetime,
    lease: timedelta,
    relaxed: bool = False,
    prepare: bool = False,
) -> list[Job]:
    """Claim up to ``limit`` READY jobs without limits from ``queues`` (empty: every queue
    but the ``paused`` ones), highest priority and oldest first. ``prepare``: PostgreSQL
    runs the claim as a prepared statement (``db.prepared``)."""
    connection = connections[database]
    if connection.vendor == "postgresql":
        if not queues:
            shape, before, after = (
                ("any_unpaused", [], [sorted(paused)]) if paused else ("any", [], [])
            )
        elif len(queues) == 1:
            shape, before, after = "one", [], [queues[0]]
        else:
            shape, before, after = "many", [list(queues)], []
        tail = [limit, limit] if shape == "many" else [limit]
        return _returning(
            database, backend, shape, before, after + tail, worker_id, now, lease, relaxed, prepare
        )
    candidates = ready(database, backend, queues, paused, now)
    if connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        return _claim_sqlite(database, candidates[:limit], worker_id, now, lease)
    return claim_locked(database, candidates, worker_id, now, lease, limit)


def ready(database: str, backend: str, queues, paused, now: datetime, gated: bool = False):
    """The claimable jobs of ``queues`` (empty: all), paused queues left out, in claim order."""
    jobs = Job.objects.using(database).claimable(backend, now, gated)
    if queues:
        jobs = jobs.filter(queue_name__in=list(queues))
    if paused:
        jobs = jobs.exclude(queue_name__in=list(paused))
    return jobs.order_by("-priority", "run_after")


def claim_ids(
    database: str,
    backend: str,
    ids: Sequence[str],
    worker_id: str,
    now: datetime,
    lease: timedelta,
    relaxed: bool = False,
    prepare: bool = False,
) -> list[Job]:
    """Claim the given job ids (handed out by Redis) that are still READY; skip the rest.

    An id delivered twice is claimed once (the status guard), and a row that is no longer
    READY is simply not returned.
    """
    if connections[database].vendor == "postgresql":
        sql, set_params, ready_params = _by_ids_statement(database, backend, lease)
        params = [*_bind(ready_params, worker_id, now), list(ids)]
        params += _bind(set_params, worker_id, now)
        return _fetch(database, sql, params, relaxed, prepare)
    candidates = Job.objects.using(database).claimable(backend, now).filter(pk__in=ids)
    return claim_locked(database, candidates, worker_id, now, lease, None)


def claim_locked(database, candidates, worker_id, now, lease, limit: int | None) -> list[Job]:
    """Lock ``candidates`` (skipping rows others hold), claim them, read them back."""
    with serialized_writes(database), transaction.atomic(using=database):
        locked = candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)
        ids = list(locked if limit is None else locked[:limit])
        if not ids:
            return []
        jobs = Job.objects.using(database).filter(pk__in=ids)
        jobs.claim(worker_id, now, lease)
        # ``ids`` were READY under lock, so these are exactly the rows this call claimed. Read
        # them before the commit: a failure after it would leave them RUNNING, never run.
        return list(jobs.held_by(worker_id))


def claim_reconnecting(database: str, worker_id: str, now, claim) -> list:
    """``claim()`` (which claims as ``worker_id`` at ``now``), riding out a dropped connection.

    After a transient database error the claim may still have committed (the server ran the
    COMMIT, its answer was lost): its rows are RUNNING for this worker, and nobody would run
    them. So first take back the rows this claim stamped, then, if there are none, claim again
    on a new connection.
    """
    try:
        return claim()
    except (DatabaseError, InterfaceError) as e:
        connections[database].close()
        if not is_transient(e):
            raise
        logger.info("claim error=%r; reconnecting and looking for its rows", e)
    return call_reconnecting(database, stamped, database, worker_id, now) or claim()


def stamped(database: str, worker_id: str, now: datetime) -> list[Job]:
    """The rows a claim by ``worker_id`` at ``now`` committed (a claim sets
    ``last_attempted_at`` to its ``now``): how a claim whose commit went unacknowledged
    finds its jobs."""
    return list(Job.objects.using(database).held_by(worker_id).filter(last_attempted_at=now))


def _returning(
    database, backend, shape, before, after, worker_id, now, lease, relaxed, prepare
) -> list:
    """PostgreSQL: one UPDATE … WHERE id IN (shape) RETURNING every column."""
    sql, set_params, ready_params = _statement(database, backend, shape, lease)
    params = [*_bind(set_params, worker_id, now), *before, *_bind(ready_params, worker_id, now)]
    return _fetch(database, sql, [*params, *after], relaxed, prepare)


def _fetch(database: str, sql: str, params: list, relaxed: bool, prepare: bool) -> list[Job]:
    if relaxed:
        relax_commits(database)
    if prepare:
        rows = fetch_prepared(database, sql, params)
    else:
        with connections[database].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    return [_job_from_row(database, row) for row in rows]


#: Stand-ins for a claim's worker and time while its statement is compiled once (the claim is
#: the hot path; compiling the ORM's SET and WHERE costs ~0.5 ms): ``_bind`` swaps them out.
_WORKER = "\x00worker\x00"
_STAND_INS = {_WORKER: "worker", json.dumps(_WORKER): "worker_json"}


@lru_cache(maxsize=64)
def _statement(database: str, backend: str, shape: str, lease: timedelta) -> tuple:
    """The claim statement of ``shape``, and its parameters with stand-ins."""
    ready_sql, ready_params = _claimable_sql(database, backend, NOW_STAND_IN)
    columns, set_params = set_clause(database, claimed(_WORKER, NOW_STAND_IN, lease))
    select = _SELECTS[shape].format(ready=ready_sql)
    sql = f"UPDATE {TABLE} SET {columns} WHERE id IN ({select}) RETURNING {_returned()[0]}"  # noqa: S608
    return sql, tuple(set_params), tuple(ready_params)


@lru_cache(maxsize=16)
def _by_ids_statement(database: str, backend: str, lease: timedelta) -> tuple:
    """The claim of given ids, and its SET and readiness parameters with stand-ins."""
    ready_sql, ready_params = _claimable_sql(database, backend, NOW_STAND_IN)
    columns, set_params = set_clause(database, claimed(_WORKER, NOW_STAND_IN, lease))
    sql = _BY_IDS.format(ready=ready_sql, columns=columns, returning=_returned()[0])
    return sql, tuple(set_params), tuple(ready_params)


def _bind(params, worker_id: str, now: datetime) -> list:
    values = {"worker": worker_id, "worker_json": json.dumps(worker_id)}
    bound = []
    for param in params:
        if isinstance(param, datetime) and param == NOW_STAND_IN:
            bound.append(now)
        elif isinstance(param, str) and param in _STAND_INS:
            bound.append(values[_STAND_INS[param]])
        else:
            bound.append(param)
    return bound


def _claimable_sql(database: str, backend: str, now: datetime) -> tuple[str, list]:
    """``JobQuerySet.claimable`` as SQL, for the hand-written statement around it."""
    query = Job.objects.using(database).claimable(backend, now).query
    sql, params = query.get_compiler(database).compile(query.where)
    return sql, list(params)


def _claim_sqlite(database, candidates, worker_id, now, lease) -> list[Job]:
    """SQLite ≥ 3.35: one UPDATE … RETURNING inside the IMMEDIATE transaction."""
    connection = connections[database]
    inner, inner_params = candidates.values("pk").query.sql_with_params()
    columns, set_params = set_clause(database, claimed(worker_id, now, lease))
    sql = f"UPDATE {TABLE} SET {columns} WHERE id IN ({inner}) RETURNING {_returned()[0]}"  # noqa: S608
    with serialized_writes(database), transaction.atomic(using=database):
        with connection.cursor() as cursor:
            cursor.execute(sql, [*set_params, *inner_params])
            rows = cursor.fetchall()
    return [_job_from_converted_row(connection, row) for row in rows]


# --- rows back into Job objects ---------------------------------------------------------------
@cache
def _returned() -> tuple[str, tuple[str, ...], tuple[int, ...]]:
    """Every Job column (RETURNING them all), their attribute names, and the positions of
    the JSON ones."""
    fields = Job._meta.concrete_fields
    columns = ", ".join(f.column for f in fields)
    attnames = tuple(f.attname for f in fields)
    json_indexes = tuple(n for n, f in enumerate(fields) if isinstance(f, JSONField))
    return columns, attnames, json_indexes


def _job_from_row(database: str, row) -> Job:
    """A Job from a PostgreSQL RETURNING row, without ``Model.__init__`` (the hot path)."""
    _, attnames, json_indexes = _returned()
    values = list(row)
    for index in json_indexes:
        value = values[index]
        if isinstance(value, str):
            # Most JSON columns of a fresh claim are empty: no parser for those.
            values[index] = [] if value == "[]" else {} if value == "{}" else json.loads(value)
    return _job(database, dict(zip(attnames, values, strict=True)))


def _job_from_converted_row(connection, row) -> Job:
    """A Job from a raw row, through the same converters a queryset would apply."""
    values = [
        _convert(value, converters, column, connection)
        for value, (converters, column) in zip(row, _converters(connection), strict=True)
    ]
    return _job(connection.alias, dict(zip(_returned()[1], values, strict=True)))


def _job(database: str, values: dict) -> Job:
    job = Job.__new__(Job)
    job._state = ModelState()
    job._state.adding = False
    job._state.db = database
    job.__dict__.update(values)
    return job


def _convert(value, converters, column, connection):
    for converter in converters:
        value = converter(value, column, connection)
    return value


_CONVERTERS: dict[str, list] = {}


def _converters(connection) -> list:
    if connection.alias not in _CONVERTERS:
        from django.db.models.expressions import Col

        converters = []
        for field in Job._meta.concrete_fields:
            column = Col(TABLE, field)
            found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
            converters.append((found, column))
        _CONVERTERS[connection.alias] = converters
    return _CONVERTERS[connection.alias]
