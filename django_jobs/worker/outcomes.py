"""Write many attempts' outcomes at once: successes in one statement, failures one by one."""

import json
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime

from django.db import connections, transaction

from django_jobs import workflows
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import JobStatus
from django_jobs.tasks_api import TaskResultStatus
from django_jobs.worker.execution import Outcome, record


def record_many(outcomes: Sequence[Outcome], database: str, now: datetime) -> None:
    """Record a batch of outcomes, each fenced by its worker and attempt."""
    successes = [o for o in outcomes if o.error is None and not o.written]
    if successes:
        # Workflow steps: their next steps start in the same transaction (see ``workflows``).
        steps = [o for o in successes if o.attempt.job.workflow_id]
        with transaction.atomic(using=database) if steps else nullcontext():
            written = mark_succeeded_many(database, successes, now)
            for outcome in steps:
                if outcome.attempt.job.pk in written:
                    outcome.attempt.activated = workflows.ended(
                        database, [(outcome.attempt.job, JobStatus.SUCCESSFUL)]
                    )
        for outcome in successes:
            if outcome.attempt.job.pk in written:
                outcome.attempt.finish(TaskResultStatus.SUCCESSFUL, outcome.value)
            else:
                outcome.attempt.lost()
    for outcome in outcomes:
        if outcome.error is not None or outcome.written:
            record(outcome, now)


def mark_succeeded_many(database: str, outcomes: Sequence[Outcome], now: datetime) -> set:
    """Mark jobs SUCCESSFUL with their return values; return the pks actually written."""
    connection = connections[database]
    if connection.vendor == "postgresql":
        return _mark_succeeded_values(connection, outcomes, now)
    return _mark_succeeded_case(connection, outcomes, now)


def _mark_succeeded_values(connection, outcomes: Sequence[Outcome], now: datetime) -> set:
    # One UPDATE … FROM (VALUES …): the fence (worker, attempt, RUNNING) is in the join, and
    # RETURNING says which rows this worker still owned.
    table = Job._meta.db_table
    rows = ", ".join(["(%s::uuid, %s, %s::int, %s::jsonb)"] * len(outcomes))
    params: list = [now]
    for outcome in outcomes:
        attempt = outcome.attempt
        params += [attempt.job.pk, attempt.worker_id, attempt.job.attempts]
        params.append(json.dumps(outcome.value))
    sql = (
        f"UPDATE {table} AS j SET status = 'SUCCESSFUL', return_value = v.value, "  # noqa: S608
        f"finished_at = %s, lease_expires_at = NULL FROM (VALUES {rows}) "
        "AS v(id, worker, attempts, value) WHERE j.id = v.id AND j.claimed_by = v.worker "
        "AND j.attempts = v.attempts AND j.status = 'RUNNING' RETURNING j.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _mark_succeeded_case(connection, outcomes: Sequence[Outcome], now: datetime) -> set:
    # SQLite/MySQL: one UPDATE, return values by CASE, each row fenced by (id, attempt) and
    # the batch's single worker. If fewer rows changed than asked, ask which ones did.
    by_worker: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_worker.setdefault(outcome.attempt.worker_id, []).append(outcome)
    written = set()
    for worker_id, batch in by_worker.items():
        written |= _mark_worker_batch(connection, worker_id, batch, now)
    return written


def _mark_worker_batch(connection, worker_id: str, outcomes: Sequence[Outcome], now) -> set:
    opts = Job._meta
    pk_field, value_field = opts.pk, opts.get_field("return_value")
    finished = opts.get_field("finished_at").get_db_prep_value(now, connection)
    ids = [pk_field.get_db_prep_value(o.attempt.job.pk, connection) for o in outcomes]
    cases, case_params, fences, fence_params = [], [], [], []
    for db_id, outcome in zip(ids, outcomes, strict=True):
        cases.append("WHEN %s THEN %s")
        case_params += [db_id, value_field.get_db_prep_save(outcome.value, connection)]
        fences.append("(id = %s AND attempts = %s)")
        fence_params += [db_id, outcome.attempt.job.attempts]
    sql = (
        f"UPDATE {opts.db_table} SET status = 'SUCCESSFUL', finished_at = %s, "  # noqa: S608
        f"lease_expires_at = NULL, return_value = CASE id {' '.join(cases)} END "
        f"WHERE status = 'RUNNING' AND claimed_by = %s AND ({' OR '.join(fences)})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [finished, *case_params, worker_id, *fence_params])
        changed = cursor.rowcount
    pks = [o.attempt.job.pk for o in outcomes]
    if changed == len(outcomes):
        return set(pks)
    mine = Job.objects.using(connection.alias).filter(
        pk__in=pks, status=JobStatus.SUCCESSFUL, claimed_by=worker_id, finished_at=now
    )
    return set(mine.values_list("pk", flat=True))
