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
# The worker's counts go here.
