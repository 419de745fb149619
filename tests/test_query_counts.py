"""The query counts of the hot paths, pinned so that they cannot silently grow.

Seconds are the benchmark's business (``manage.py jobs bench``, docs/performance.md); these
tests count statements (``CaptureQueriesContext``) and Redis commands, on each database.
They run in autocommit (``transaction=True``), as a view enqueues.
"""

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_jobs.models import Job
from django_jobs.tasks_api import task_backends
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)

#: Statements of one plain enqueue, per database: the INSERT (SQLite and MariaDB: Django's
#: ``save(force_insert=True)``; PostgreSQL: a ready-made INSERT bound on the server).
ONE_ENQUEUE = {"postgresql": 1, "sqlite": 1, "mysql": 1}
#: Statements of ``enqueue_many`` of 1,000 plain jobs, in the transaction it opens (Django
#: logs its BEGIN and COMMIT): PostgreSQL one COPY; elsewhere one ``bulk_create`` INSERT.
MANY_ENQUEUE = {"postgresql": 3, "sqlite": 3, "mysql": 3}
#: A unique enqueue whose key is free: its INSERT, in a transaction of its own.
UNIQUE_ENQUEUE = {"postgresql": 3, "sqlite": 3, "mysql": 3}
#: A unique enqueue whose key is held: BEGIN, the INSERT that fails, its ROLLBACK, and one
#: read of the holder.
HELD_KEY_ENQUEUE = {"postgresql": 4, "sqlite": 4, "mysql": 4}


def statements(captured) -> list[str]:
    return [query["sql"] for query in captured.captured_queries]


# --- enqueue ----------------------------------------------------------------------------------
def test_one_enqueue_is_one_statement():
    # Given a backend and a task that were used once already (nothing left to warm up)
    tasks.add.enqueue(0, 0)
    # When a job is enqueued
    with CaptureQueriesContext(connection) as captured:
        result = tasks.add.enqueue(1, 2)
    # Then one statement wrote it: the INSERT
    assert len(captured) == ONE_ENQUEUE[connection.vendor], statements(captured)
    assert statements(captured)[-1].startswith("INSERT INTO")
    assert Job.objects.filter(pk=result.id).exists()


def test_enqueue_many_of_a_thousand_jobs_is_a_fixed_number_of_statements():
    # Given a thousand plain calls
    calls = [(tasks.add, (i, i), {}) for i in range(1000)]
    # When they are enqueued at once
    with CaptureQueriesContext(connection) as captured:
        results = task_backends["default"].enqueue_many(calls)
    # Then a fixed number of statements wrote them (PostgreSQL: one COPY)
    assert len(captured) == MANY_ENQUEUE[connection.vendor], statements(captured)
    if connection.vendor == "postgresql":
        assert statements(captured)[1].startswith("COPY django_jobs_job")
    assert Job.objects.filter(pk__in=[r.id for r in results]).count() == 1000


def test_unique_enqueue_with_a_free_key_is_a_fixed_number_of_statements():
    # Given a unique task whose key nobody holds
    # When it is enqueued
    with CaptureQueriesContext(connection) as captured:
        tasks.unique_add.enqueue(1, 2)
    # Then its INSERT, in a transaction of its own, is all it took
    assert len(captured) == UNIQUE_ENQUEUE[connection.vendor], statements(captured)


def test_unique_enqueue_of_a_held_key_adds_one_read_of_the_holder():
    # Given a unique job holding its key
    first = tasks.unique_add.enqueue(1, 2)
    # When the same call is enqueued again
    with CaptureQueriesContext(connection) as captured:
        again = tasks.unique_add.enqueue(1, 2)
    # Then the failed INSERT and one read of the holder answered it
    assert again.id == first.id
    assert len(captured) == HELD_KEY_ENQUEUE[connection.vendor], statements(captured)


# --- Redis broker -----------------------------------------------------------------------------
class CommandCounter:
    """Count what a Redis client sends: single commands, and pipelines (one round trip each)."""

    def __init__(self, monkeypatch):
        self.sent: list[str] = []
        command, pipeline = redis.Redis.execute_command, redis.client.Pipeline.execute

        def counted_command(client, *args, **options):
            self.sent.append(str(args[0]))
            return command(client, *args, **options)

        def counted_pipeline(pipe, *args, **options):
            self.sent.append("pipeline")
            return pipeline(pipe, *args, **options)

        monkeypatch.setattr(redis.Redis, "execute_command", counted_command)
        monkeypatch.setattr(redis.client.Pipeline, "execute", counted_pipeline)


@pytest.mark.redis
def test_enqueue_on_the_redis_broker_is_one_statement_and_one_redis_round_trip(
    redis_backend, redis_db, monkeypatch
):
    # Given the Redis broker, used once already (its script loaded, its connection open)
    task = tasks.add.using(backend="redis")
    task.enqueue(0, 0)
    counter = CommandCounter(monkeypatch)
    # When a job is enqueued
    with CaptureQueriesContext(connection) as captured:
        result = task.enqueue(1, 2)
    # Then one statement wrote the row and one Redis command published it
    assert len(captured) == ONE_ENQUEUE[connection.vendor], statements(captured)
    assert counter.sent == ["EVALSHA"]
    assert result.id.encode() in redis_db.zrange("django_jobs:redis:ready:default", 0, -1)


@pytest.mark.redis
def test_enqueue_many_on_the_redis_broker_is_one_redis_round_trip(
    redis_backend, redis_db, monkeypatch
):
    # Given the Redis broker, used once already, and a thousand calls
    redis_backend.enqueue_many([(tasks.add.using(backend="redis"), (0, 0), {})])
    calls = [(tasks.add.using(backend="redis"), (i, i), {}) for i in range(1000)]
    counter = CommandCounter(monkeypatch)
    # When they are enqueued at once
    with CaptureQueriesContext(connection) as captured:
        redis_backend.enqueue_many(calls)
    # Then the rows took the database's fixed count and Redis one pipeline
    assert len(captured) == MANY_ENQUEUE[connection.vendor], statements(captured)
    assert counter.sent == ["pipeline"]
    assert redis_db.zcard("django_jobs:redis:ready:default") == 1001


# --- worker (claim, completion) ---------------------------------------------------------------
#: Statements of one claim by the database broker, however many jobs it takes. PostgreSQL: one
#: UPDATE … RETURNING; SQLite: BEGIN IMMEDIATE, the UPDATE … RETURNING, COMMIT; MariaDB:
#: BEGIN, SELECT … FOR UPDATE SKIP LOCKED, the UPDATE, the read back, COMMIT.
CLAIM = {"postgresql": 1, "sqlite": 3, "mysql": 5}
#: The Redis broker's claim of the ids it popped: PostgreSQL one UPDATE … RETURNING; elsewhere
#: the locked SELECT, UPDATE and read back in a transaction.
CLAIM_IDS = {"postgresql": 1, "sqlite": 5, "mysql": 5}
#: Statements that record a batch of successes, however many: one UPDATE (PostgreSQL: from
#: arrays of the batch's values; elsewhere the values by CASE).
SUCCESSES = {"postgresql": 1, "sqlite": 1, "mysql": 1}


def claim_and_succeed(backend, count: int) -> tuple[list[str], list[str]]:
    """Claim ``count`` ready jobs as a worker does, record their successes; the statements."""
    from django.utils import timezone

    from django_jobs.worker.execution import Attempt, Outcome
    from django_jobs.worker.outcomes import record_many
    from tests.conftest import QUEUES

    now = timezone.now()
    with CaptureQueriesContext(connection) as claimed:
        jobs = backend.broker.claim("w-counts", QUEUES, count, now)
    assert len(jobs) == count
    outcomes = [Outcome(Attempt(job, "w-counts", backend), value=job.args) for job in jobs]
    with CaptureQueriesContext(connection) as recorded:
        record_many(outcomes, backend.database, timezone.now())
    finished = Job.objects.filter(pk__in=[job.pk for job in jobs], status="SUCCESSFUL")
    assert finished.count() == count
    return statements(claimed), statements(recorded)


@pytest.mark.parametrize("count", [5, 200])
def test_a_claim_and_its_successes_are_a_fixed_number_of_statements(fast_backend, count):
    # Given ready jobs in the worker's queues, the broker used once already
    task = tasks.add.using(backend="default")
    fast_backend.enqueue_many([(task, (0, 0), {})])
    claim_and_succeed(fast_backend, 1)
    fast_backend.enqueue_many([(task, (i, i), {}) for i in range(count)])
    # When a worker claims them in one call and records their successes in one batch
    claimed, recorded = claim_and_succeed(fast_backend, count)
    # Then each took the same few statements, whatever the count
    assert len(claimed) == CLAIM[connection.vendor], claimed
    assert len(recorded) == SUCCESSES[connection.vendor], recorded


@pytest.mark.redis
@pytest.mark.parametrize("count", [5, 200])
def test_a_redis_claim_is_one_statement_and_one_redis_round_trip(
    redis_backend, redis_db, monkeypatch, count
):
    # Given jobs published to Redis, the broker used once already
    task = tasks.add.using(backend="redis")
    redis_backend.enqueue_many([(task, (0, 0), {})])
    claim_and_succeed(redis_backend, 1)
    redis_backend.enqueue_many([(task, (i, i), {}) for i in range(count)])
    counter = CommandCounter(monkeypatch)
    # When a worker claims them in one call and records their successes
    claimed, recorded = claim_and_succeed(redis_backend, count)
    # Then the claim popped the ids (one script, which also settled the previous claim's ids)
    # and claimed their rows by id (the database's count); the successes took one statement
    assert counter.sent == ["EVALSHA"]
    assert len(claimed) == CLAIM_IDS[connection.vendor], claimed
    assert len(recorded) == SUCCESSES[connection.vendor], recorded
