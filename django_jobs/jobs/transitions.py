"""Every change of a job's status: guarded conditional UPDATEs, and the columns each writes.

Each verb names the status it moves jobs *from* (its guard) and writes the columns listed once
below; it returns how many rows it changed, so a caller that lost a race (the job was rescued,
cancelled or claimed elsewhere) sees 0 and drops its outcome. Verbs on running jobs are called
on ``held_by(worker, attempt)`` (the worker's fence) or ``expired()`` (the rescue's).

The verbs are queryset methods (``Job.objects.filter(...).mark_failed(now, error)``); the
statements that cannot be ORM updates (the vendors' one-round-trip claims, a batch of
successes) build their SET clause from the same column functions (``set_clause``).
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.db import connections, models
from django.db.models import Case, F, Q, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Now
from django.db.models.sql import UpdateQuery

from django_jobs.db.expressions import AppendJSON, DropLastJSON, lease_deadline
from django_jobs.db.prepared import fetch_prepared
from django_jobs.jobs.status import JobStatus, cancelled_entry


# --- the columns of each transition (written once) -------------------------------------------
def claimed(worker_id: str, now: datetime, lease: timedelta) -> dict:
    """A claim: the job runs for ``worker_id``, as a new attempt, until its lease runs out.

    The lease runs out by the database's clock; ``now`` (the worker's) dates the attempt, and
    is how a claim whose commit went unacknowledged finds its rows again (``stamped``).
    """
    return {
        "status": JobStatus.RUNNING,
        "attempts": F("attempts") + 1,
        "claimed_by": worker_id,
        "lease_expires_at": lease_deadline(lease),
        "started_at": Coalesce("started_at", Value(now)),
        "last_attempted_at": now,
        "worker_ids": AppendJSON("worker_ids", worker_id),
    }


def succeeded(now: datetime, value) -> dict:
    return {
        "status": JobStatus.SUCCESSFUL,
        "return_value": value,
        "finished_at": now,
        "lease_expires_at": None,
    }


def failed(now: datetime, error: dict) -> dict:
    return {
        "status": JobStatus.FAILED,
        "finished_at": now,
        "lease_expires_at": None,
        "errors": AppendJSON("errors", error),
    }


def cancelled(now: datetime, error: dict) -> dict:
    return {**failed(now, error), "status": JobStatus.CANCELLED}


def retried(run_after: datetime, error: dict) -> dict:
    """A failed attempt with attempts left: READY again at ``run_after``."""
    return {
        "status": JobStatus.READY,
        "run_after": run_after,
        "claimed_by": None,
        "lease_expires_at": None,
        "errors": AppendJSON("errors", error),
    }


def snoozed(run_after: datetime) -> dict:
    """READY again at ``run_after``; the attempt is given back."""
    return {
        "status": JobStatus.READY,
        "run_after": run_after,
        "claimed_by": None,
        "lease_expires_at": None,
        "max_attempts": F("max_attempts") + 1,
    }


def handed_back() -> dict:
    """READY again at once, nothing recorded (a worker shutting down)."""
    return {"status": JobStatus.READY, "claimed_by": None, "lease_expires_at": None}


def unclaimed() -> dict:
    """A claim undone: READY at once, as if never claimed (a job claimed ahead that never
    started: its attempt, start time and worker are taken back)."""
    return {
        # A first attempt had no start time before its claim. MySQL assigns left to right
        # (a later column sees an earlier one's new value): ``attempts`` comes last.
        "started_at": Case(When(attempts=1, then=Value(None)), default=F("started_at")),
        "worker_ids": DropLastJSON("worker_ids"),
        "status": JobStatus.READY,
        "claimed_by": None,
        "lease_expires_at": None,
        "attempts": F("attempts") - 1,
    }


def reopened(now: datetime) -> dict:
    """An operator's retry: READY now, with a fresh attempt budget."""
    return {
        "status": JobStatus.READY,
        "run_after": now,
        "finished_at": None,
        "max_attempts": F("attempts") + F("max_attempts"),
        "claimed_by": None,
        "cancel_requested_at": None,
    }


def activated(args: list, run_after: datetime) -> dict:
    """A workflow step whose parents ended: READY, fed their results."""
    return {"status": JobStatus.READY, "args": args, "run_after": run_after}


#: Statuses a job has not started from.
WAITING = (JobStatus.READY, JobStatus.BLOCKED)


# --- the verbs --------------------------------------------------------------------------------
class JobTransitions(models.QuerySet):
    """Transitions of the jobs in this queryset; each adds its own status guard."""

    def claim(self, worker_id: str, now: datetime, lease: timedelta) -> int:
        """READY → RUNNING for ``worker_id``; each claim counts as an attempt."""
        return self.filter(status=JobStatus.READY).update(**claimed(worker_id, now, lease))

    def mark_succeeded(self, now: datetime, return_value) -> int:
        return self._running().update(**succeeded(now, return_value))

    def mark_failed(self, now: datetime, error: dict) -> int:
        return self._running().update(**failed(now, error))

    def mark_cancelled(self, now: datetime, error: dict) -> int:
        """RUNNING → CANCELLED (the job was asked to stop, or discarded itself)."""
        return self._running().update(**cancelled(now, error))

    def retry_later(self, run_after: datetime, error: dict) -> int:
        """RUNNING → READY at ``run_after``, the failed attempt recorded."""
        return self._running().update(**retried(run_after, error))

    def snooze(self, run_after: datetime) -> int:
        """RUNNING → READY at ``run_after``; the attempt is given back."""
        return self._running().update(**snoozed(run_after))

    def requeue(self) -> int:
        """RUNNING → READY at once without recording a failure (shutdown).

        Jobs whose cancellation was requested end CANCELLED instead.
        """
        running = self._running()
        asked = running.filter(cancel_requested_at__isnull=False)
        asked.mark_cancelled(Now(), cancelled_entry("cancelled while its worker shut down"))
        return running.update(**handed_back())

    def unclaim(self) -> int:
        """RUNNING → READY, the claim undone: jobs claimed ahead that never started.

        Jobs whose cancellation was requested meanwhile end CANCELLED instead.
        """
        running = self._running()
        asked = running.filter(cancel_requested_at__isnull=False)
        asked.mark_cancelled(Now(), cancelled_entry("cancelled before it started"))
        return running.update(**unclaimed())

    def cancel(self, now: datetime, reason: str = "cancelled before it started") -> int:
        """READY or BLOCKED → CANCELLED (see ``request_cancel`` for running jobs)."""
        return self.filter(status__in=WAITING).update(
            **cancelled(now, cancelled_entry(reason, now))
        )

    def request_cancel(self, now: datetime) -> int:
        """Flag running jobs for cancellation; their worker stops them."""
        asked = self._running().filter(cancel_requested_at__isnull=True)
        return asked.update(cancel_requested_at=now)

    def retry(self, now: datetime) -> int:
        """FAILED or CANCELLED → READY now, with a fresh attempt budget."""
        ended = self.filter(status__in=(JobStatus.FAILED, JobStatus.CANCELLED))
        return ended.update(**reopened(now))

    def activate(self, args: list, run_after: datetime) -> int:
        """BLOCKED → READY: a workflow step whose parents ended."""
        return self.filter(status=JobStatus.BLOCKED).update(**activated(args, run_after))

    def renew_leases(self, lease: timedelta) -> int:
        """Push the leases of running jobs back to ``lease`` from now, by the database's clock."""
        return self._running().update(lease_expires_at=lease_deadline(lease))

    def _running(self):
        return self.filter(status=JobStatus.RUNNING)


# --- statements built from the same columns ---------------------------------------------------
#: Stands for a statement's time while it is compiled once (the hot path's statements: the
#: claim, a batch of successes); swapped for the real time at each call.
NOW_STAND_IN = datetime(1, 1, 1, 0, 0, 0, 424242, tzinfo=UTC)


def set_clause(database: str, values: dict) -> tuple[str, list]:
    """The ``SET`` clause (without the keyword) and parameters of an ORM update of ``values``.

    Lets hand-written statements (a claim with RETURNING, a batch of successes) write exactly
    the columns of the transition above, compiled for the database's vendor.
    """
    from django_jobs.jobs.models import Job

    query = UpdateQuery(Job)
    query.add_update_values(values)
    sql, params = query.get_compiler(database).as_sql()
    head = f"UPDATE {connections[database].ops.quote_name(Job._meta.db_table)} SET "  # noqa: S608
    if not sql.startswith(head):  # pragma: no cover  (Django changed how it writes UPDATE)
        raise AssertionError(f"unexpected UPDATE shape: {sql[:80]}")
    return sql[len(head) :], list(params)


def succeed_many(database: str, done: Sequence[tuple], now: datetime, prepare: bool = False) -> set:
    """RUNNING → SUCCESSFUL for many attempts in one statement; return the pks written.

    ``done``: ``(pk, worker_id, attempt, return_value)`` per attempt, each fenced by its
    worker and attempt (a row another worker now holds is left alone). ``prepare``: on
    PostgreSQL, as a prepared statement (``db.prepared``).
    """
    if not done:
        return set()
    if connections[database].vendor == "postgresql":
        return _succeed_values(database, done, now, prepare)
    by_worker: dict[str, list[tuple]] = {}
    for item in done:
        by_worker.setdefault(item[1], []).append(item)
    written: set = set()
    for worker_id, batch in by_worker.items():
        written |= _succeed_case(database, worker_id, batch, now)
    return written


def _succeed_values(database: str, done: Sequence[tuple], now: datetime, prepare: bool) -> set:
    # PostgreSQL: one UPDATE … FROM unnest(arrays) RETURNING; the fence (worker, attempt,
    # RUNNING) is the join, and RETURNING says which rows were still this worker's. The
    # statement's text is the same for every batch size (the values travel as four arrays).
    columns, params = _succeed_set(database, now)
    ids, workers, attempts, values = [], [], [], []
    for pk, worker_id, attempt, value in done:
        ids.append(pk)
        workers.append(worker_id)
        attempts.append(attempt)
        values.append(json.dumps(value))
    sql = _SUCCEED_SQL.format(columns=columns)
    params = [*params, ids, workers, attempts, values, JobStatus.RUNNING]
    if prepare:
        return {row[0] for row in fetch_prepared(database, sql, params)}
    with connections[database].cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


_SUCCEED_SQL = (
    "UPDATE django_jobs_job AS j SET {columns} "
    "FROM unnest(%s::uuid[], %s::text[], %s::int[], %s::jsonb[]) AS v(id, worker, attempts, value) "
    "WHERE j.id = v.id AND j.claimed_by = v.worker AND j.attempts = v.attempts "
    "AND j.status = %s RETURNING j.id"
)


def _succeed_set(database: str, now: datetime) -> tuple[str, list]:
    """The SET clause of a batch of successes; ``now`` is its one parameter."""
    columns, params = _succeed_set_compiled(database)
    return columns, [now if param == NOW_STAND_IN else param for param in params]


@lru_cache(maxsize=8)
def _succeed_set_compiled(database: str) -> tuple[str, tuple]:
    columns, params = set_clause(database, succeeded(NOW_STAND_IN, RawSQL("v.value", ())))
    return columns, tuple(params)


def _succeed_case(database: str, worker_id: str, batch: Sequence[tuple], now) -> set:
    # Elsewhere: one UPDATE, return values by CASE. If fewer rows changed than asked, some
    # attempts lost their lease: ask which rows were ours.
    from django_jobs.jobs.models import Job

    field = Job._meta.get_field("return_value")
    fence = Q()
    for pk, _, attempt, _ in batch:
        fence |= Q(pk=pk, attempts=attempt)
    values = models.Case(
        *(models.When(pk=pk, then=Value(value, output_field=field)) for pk, _, _, value in batch),
        output_field=field,
    )
    jobs = Job.objects.using(database)
    changed = jobs.filter(fence).held_by(worker_id).mark_succeeded(now, values)
    pks = [pk for pk, _, _, _ in batch]
    if changed == len(batch):
        return set(pks)
    mine = jobs.filter(pk__in=pks, status=JobStatus.SUCCESSFUL, claimed_by=worker_id)
    return set(mine.filter(finished_at=now).values_list("pk", flat=True))
