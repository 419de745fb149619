"""The Redis broker against a real Redis server, driven in-process (no worker processes)."""

import logging
import threading
from datetime import timedelta

import pytest
import redis
from django.db import connection, transaction
from django.utils import timezone

from django_jobs.brokers.fallback import OUTAGE_NOTE
from django_jobs.brokers.redis.store import epoch_ms
from django_jobs.db.writes import relax_commits
from django_jobs.exceptions import BrokerUnavailable
from django_jobs.jobs import leases
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from tests import tasks

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

LATER = timedelta(hours=1)


def on_redis(task):
    return task.using(backend="redis")


def ready_ids(redis_db, queue="default") -> list[str]:
    return [m.decode() for m in redis_db.zrange(f"django_jobs:redis:ready:{queue}", 0, -1)]


def delayed_ids(redis_db, queue="default") -> list[str]:
    members = redis_db.zrange(f"django_jobs:redis:delayed:{queue}", 0, -1)
    return [m.decode().split("|", 1)[1] for m in members]


def inflight_ids(redis_db) -> list[str]:
    return [m.decode() for m in redis_db.zrange("django_jobs:redis:inflight", 0, -1)]


def claim(backend, limit=10, now=None, worker="w1", queues=()):
    return backend.broker.claim(worker, list(queues), limit, now or timezone.now())


# --- publishing -------------------------------------------------------------------------------
def test_enqueue_publishes_the_id_when_the_transaction_commits(redis_backend, redis_db):
    # Given an enqueue inside a transaction
    with transaction.atomic():
        result = on_redis(tasks.add).enqueue(1, 2)
        # Then nothing is in Redis before the commit
        assert ready_ids(redis_db) == []
    # And the id is ready, with a wake-up token, once it commits
    assert ready_ids(redis_db) == [result.id]
    assert redis_db.llen("django_jobs:redis:wakeup:default") == 1
    assert redis_db.llen("django_jobs:redis:wakeup:*") == 1


def test_rolled_back_enqueue_publishes_nothing(redis_backend, redis_db):
    # Given an enqueue in a transaction that rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        on_redis(tasks.add).enqueue(1, 2)
        raise RuntimeError("roll back")
    # Then there is neither a row nor anything in Redis
    assert Job.objects.count() == 0
    assert redis_db.keys("*") == []


def test_enqueue_many_publishes_every_job_in_one_pipeline(redis_backend, redis_db, monkeypatch):
    # Given many jobs over two queues, one delayed
    calls = [(on_redis(tasks.add), (i, i), {}) for i in range(20)]
    calls.append((on_redis(tasks.other_queue), ("x",), {}))
    calls.append((on_redis(tasks.add).using(run_after=timezone.now() + LATER), (0, 0), {}))
    round_trips = []
    execute = redis.client.Pipeline.execute
    monkeypatch.setattr(
        redis.client.Pipeline,
        "execute",
        lambda pipe, *a, **kw: round_trips.append(len(pipe)) or execute(pipe, *a, **kw),
    )
    # When they are enqueued at once
    results = redis_backend.enqueue_many(calls)
    # Then one pipeline carried them all
    assert len(round_trips) == 1
    # And each is in its queue's ready set, or in the delayed set
    assert sorted(ready_ids(redis_db)) == sorted(r.id for r in results[:20])
    assert ready_ids(redis_db, "emails") == [results[20].id]
    assert delayed_ids(redis_db) == [results[21].id]
    assert {q.decode() for q in redis_db.smembers("django_jobs:redis:queues")} == {
        "default",
        "emails",
    }


def test_enqueue_while_redis_is_down_writes_the_row_and_warns(settings, redis_backend, caplog):
    # Given the redis backend pointing at a port where nothing listens
    settings.TASKS = {
        **settings.TASKS,
        "redis": {
            **settings.TASKS["redis"],
            "OPTIONS": {**settings.TASKS["redis"]["OPTIONS"], "redis_url": "redis://127.0.0.1:1/0"},
        },
    }
    # When a job is enqueued
    with caplog.at_level(logging.WARNING, logger="django_jobs"):
        result = on_redis(tasks.add).enqueue(1, 2)
    # Then the row is written and the failure is a warning, not an exception
    assert Job.objects.get(pk=result.id).status == JobStatus.READY
    assert "redis unavailable" in caplog.text


# --- claiming ---------------------------------------------------------------------------------
def test_claim_takes_higher_priority_first_then_older(redis_backend):
    # Given jobs of three priorities, two of them equal
    low = on_redis(tasks.add).using(priority=-5).enqueue(0, 0)
    old = on_redis(tasks.add).enqueue(0, 1)
    high = on_redis(tasks.add).using(priority=10).enqueue(0, 2)
    new = on_redis(tasks.add).enqueue(0, 3)
    # When they are claimed one at a time
    order = [str(claim(redis_backend, limit=1)[0].pk) for _ in range(4)]
    # Then priority wins, then age
    assert order == [high.id, old.id, new.id, low.id]
    assert claim(redis_backend) == []


def test_claim_marks_rows_running_and_the_next_pop_empties_in_flight(redis_backend, redis_db):
    # Given two ready jobs
    results = [on_redis(tasks.add).enqueue(i, i) for i in range(2)]
    # When a worker claims them
    jobs = claim(redis_backend, worker="w1")
    # Then both are RUNNING for that worker, out of the ready set, still in flight (their
    # settle rides on the next pop: one round trip less per claim)
    assert sorted(str(j.pk) for j in jobs) == sorted(r.id for r in results)
    assert {(j.status, j.claimed_by, j.attempts) for j in jobs} == {(JobStatus.RUNNING, "w1", 1)}
    assert ready_ids(redis_db) == []
    assert sorted(inflight_ids(redis_db)) == sorted(r.id for r in results)
    # And the next claim, finding nothing, drops them from in-flight
    assert claim(redis_backend, worker="w1") == []
    assert inflight_ids(redis_db) == []


def test_a_closed_broker_settles_what_it_claimed_last(redis_backend, redis_db):
    # Given a claim whose ids wait in flight for the next pop
    result = on_redis(tasks.add).enqueue(1, 1)
    assert [str(j.pk) for j in claim(redis_backend)] == [result.id]
    assert inflight_ids(redis_db) == [result.id]
    # When the worker stops (its broker is closed) before popping again
    redis_backend.broker.close()
    # Then the ids leave in-flight at once instead of waiting for the sweeper
    assert inflight_ids(redis_db) == []


def test_claim_queries_the_database_only_when_redis_hands_out_ids(
    redis_backend, django_assert_num_queries, django_assert_max_num_queries
):
    # Given an empty queue
    # When an idle worker claims, then the database is not queried at all
    with django_assert_num_queries(0):
        assert claim(redis_backend) == []
    # And claiming a batch is one statement on PostgreSQL (a few elsewhere), whatever its size
    for i in range(5):
        on_redis(tasks.add).enqueue(i, i)
    expected = 1 if connection.vendor == "postgresql" else 5
    relax_commits(redis_backend.database)  # a session setting, once per connection
    with django_assert_max_num_queries(expected):
        assert len(claim(redis_backend)) == 5


def test_claim_serves_only_the_queues_asked_for(redis_backend):
    # Given a job in another queue
    other = on_redis(tasks.other_queue).enqueue("x")
    # When a worker serving "default" claims
    # Then it gets nothing, and a worker serving every queue gets the job
    assert claim(redis_backend, queues=["default"]) == []
    assert [str(j.pk) for j in claim(redis_backend)] == [other.id]


def test_delayed_job_is_promoted_when_due(redis_backend, redis_db):
    # Given a job to run in an hour
    result = on_redis(tasks.add).using(run_after=timezone.now() + LATER).enqueue(1, 2)
    assert delayed_ids(redis_db) == [result.id]
    # When a worker claims now, then after the hour
    now = claim(redis_backend)
    later = claim(redis_backend, now=timezone.now() + LATER + timedelta(seconds=1))
    # Then the job is only claimed once it is due
    assert now == []
    assert [str(j.pk) for j in later] == [result.id]
    assert delayed_ids(redis_db) == []


def test_an_id_delivered_twice_is_claimed_once(redis_backend, redis_db):
    # Given a job whose id reached Redis twice (a sweeper racing a claim, a replayed publish)
    result = on_redis(tasks.add).enqueue(1, 2)
    first = claim(redis_backend, worker="w1")
    redis_backend.broker.publish([Job.objects.get(pk=result.id)])
    assert ready_ids(redis_db) == [result.id]
    # When workers (the same one, and another) claim again
    # Then neither gets it: the row is not READY, and the stray id is dropped
    assert [str(j.pk) for j in first] == [result.id]
    assert claim(redis_backend, worker="w1") == []
    redis_backend.broker.publish([Job.objects.get(pk=result.id)])
    assert claim(redis_backend, worker="w2") == []
    assert ready_ids(redis_db) == inflight_ids(redis_db) == []
    assert Job.objects.get(pk=result.id).attempts == 1


def test_ids_whose_rows_are_not_ready_are_dropped(redis_backend, redis_db):
    # Given a cancelled job and a deleted one, both still in Redis
    cancelled = on_redis(tasks.add).enqueue(1, 2)
    deleted = on_redis(tasks.add).enqueue(3, 4)
    Job.objects.filter(pk=cancelled.id).cancel(timezone.now())
    Job.objects.filter(pk=deleted.id).delete()
    # When a worker claims
    # Then it gets nothing and Redis forgets both
    assert claim(redis_backend) == []
    assert ready_ids(redis_db) == inflight_ids(redis_db) == []


@pytest.mark.parametrize("stale_count, limit", [(12, 3), (3000, 1)])
def test_stale_ids_ahead_of_a_live_job_do_not_hide_it(redis_backend, redis_db, stale_count, limit):
    # Given a live job behind ids whose rows were deleted (a purge, a bulk delete in the admin,
    # a benchmark's clean-up): 3,000 are more than a one-slot claim pops in its rounds
    stale = redis_backend.enqueue_many(
        [(on_redis(tasks.add).using(priority=5), (i, i), {}) for i in range(stale_count)]
    )
    Job.objects.filter(pk__in=[r.id for r in stale]).delete()
    live = on_redis(tasks.add).enqueue(1, 1)
    # When a worker claims a few at a time, or with one free slot
    jobs = claim(redis_backend, limit=limit)
    # Then it gets the live job in one call (a burst worker would otherwise have stopped),
    # and the stale ids are gone (the live one stays in flight until the next pop)
    assert [str(j.pk) for j in jobs] == [live.id]
    assert ready_ids(redis_db) == []
    assert inflight_ids(redis_db) == [live.id]


def test_claim_falls_back_to_the_database_when_redis_is_down(settings, redis_backend):
    # Given the redis backend pointing at a port where nothing listens, and a job enqueued there
    options = {**settings.TASKS["redis"]["OPTIONS"], "redis_url": "redis://127.0.0.1:1/0"}
    settings.TASKS = {**settings.TASKS, "redis": {**settings.TASKS["redis"], "OPTIONS": options}}
    from django_jobs.tasks_api import task_backends

    backend = task_backends["redis"]
    result = on_redis(tasks.add).enqueue(1, 2)
    # When a worker claims: Redis itself cannot be reached
    with pytest.raises(BrokerUnavailable):
        backend.broker.redis.claim("w1", [], 10, timezone.now())
    # Then the broker claims the job straight from the database, and says so
    try:
        assert [str(job.pk) for job in claim(backend)] == [result.id]
        assert backend.broker.note == OUTAGE_NOTE
    finally:
        backend.broker.close()


# --- reliability: leases and the sweeper ------------------------------------------------------
def test_id_popped_by_a_claimer_that_died_is_reclaimed_after_the_lease(redis_backend, redis_db):
    # Given a job whose id a worker popped from Redis before dying (no database claim)
    result = on_redis(tasks.add).enqueue(1, 2)
    store = redis_backend.broker.store
    now = timezone.now()
    assert store.pop(["default"], 10, epoch_ms(now), 3000) == [result.id]
    assert inflight_ids(redis_db) == [result.id]
    # When the sweeper runs before the lease ends, then after
    assert redis_backend.broker.sweep(now) == 0
    assert claim(redis_backend, now=now) == []
    later = now + timedelta(seconds=4)
    redis_backend.broker.sweep(later)
    # Then the id is back and the job can be claimed, as a first attempt
    assert inflight_ids(redis_db) == []
    jobs = claim(redis_backend, now=later)
    assert [(str(j.pk), j.attempts) for j in jobs] == [(result.id, 1)]


def test_expired_in_flight_ids_of_finished_rows_are_dropped(redis_backend, redis_db):
    # Given a worker that claimed a job in the database but died before settling Redis
    result = on_redis(tasks.add).enqueue(1, 2)
    store = redis_backend.broker.store
    now = timezone.now()
    store.pop(["default"], 10, epoch_ms(now), 3000)
    Job.objects.filter(pk=result.id).claim("dead", now, timedelta(seconds=3))
    # When the sweeper runs after the in-flight lease
    redis_backend.broker.sweep(now + timedelta(seconds=4))
    # Then Redis forgets the id: the database's own lease covers the running job
    assert inflight_ids(redis_db) == ready_ids(redis_db) == []


def test_sweep_restores_every_ready_job_after_redis_lost_its_data(redis_backend, redis_db):
    # Given ready and delayed jobs, then Redis losing everything
    ready = [on_redis(tasks.add).using(priority=p).enqueue(p, p) for p in (1, 5, 3)]
    delayed = on_redis(tasks.add).using(run_after=timezone.now() + LATER).enqueue(0, 0)
    running = on_redis(tasks.other_queue).enqueue("x")
    claim(redis_backend, queues=["emails"])
    redis_db.flushdb()
    # When the sweeper runs
    published = redis_backend.broker.sweep(timezone.now())
    # Then every READY job is back where it was, and nothing else
    assert published == 4
    assert sorted(ready_ids(redis_db)) == sorted(r.id for r in ready)
    assert delayed_ids(redis_db) == [delayed.id]
    assert ready_ids(redis_db, "emails") == []
    assert Job.objects.get(pk=running.id).status == JobStatus.RUNNING
    # And claims follow priority again
    assert [str(j.pk) for j in claim(redis_backend)] == [ready[1].id, ready[2].id, ready[0].id]


def test_sweep_publishes_ready_rows_redis_never_saw(settings, redis_backend, redis_db):
    # Given Redis in sync, then a job enqueued while Redis was unreachable
    redis_backend.broker.sweep(timezone.now())
    good = settings.TASKS["redis"]
    bad = {**good, "OPTIONS": {**good["OPTIONS"], "redis_url": "redis://127.0.0.1:1/0"}}
    settings.TASKS = {**settings.TASKS, "redis": bad}
    result = on_redis(tasks.add).enqueue(1, 2)
    settings.TASKS = {**settings.TASKS, "redis": good}
    from django_jobs.tasks_api import task_backends

    # When Redis is back and the sweeper runs
    published = task_backends["redis"].broker.sweep(timezone.now())
    # Then the job is published
    assert published == 1
    assert ready_ids(redis_db) == [result.id]


def test_sweep_drops_ids_whose_rows_are_gone_or_finished(redis_backend, redis_db):
    # Given a delayed job that was deleted and a ready one that was cancelled
    gone = on_redis(tasks.add).using(run_after=timezone.now() + LATER).enqueue(1, 2)
    cancelled = on_redis(tasks.add).enqueue(3, 4)
    kept = on_redis(tasks.add).enqueue(5, 6)
    Job.objects.filter(pk=gone.id).delete()
    Job.objects.filter(pk=cancelled.id).cancel(timezone.now())
    # When the sweeper has visited both sets (one chunk of one set per sweep)
    for _ in range(2):
        redis_backend.broker.sweep(timezone.now())
    # Then only the live job is left
    assert delayed_ids(redis_db) == []
    assert ready_ids(redis_db) == [kept.id]


def test_sweep_with_every_runs_once_per_interval(redis_backend, redis_db):
    # Given a job Redis lost
    on_redis(tasks.add).enqueue(1, 2)
    redis_db.flushdb()
    broker = redis_backend.broker
    # When two workers sweep within the same interval
    # Then only the first does the work
    assert broker.sweep(timezone.now(), every=60) == 1
    redis_db.delete("django_jobs:redis:ready:default")
    assert broker.sweep(timezone.now(), every=60) == 0


def test_rescued_jobs_are_published_at_once(redis_backend, redis_db):
    # Given a job claimed by a worker whose lease then ran out
    result = on_redis(tasks.add).enqueue(1, 2)
    claim(redis_backend, worker="dead")
    expired = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(pk=result.id).update(max_attempts=2, lease_expires_at=expired)
    # When a live worker rescues it, handing the requeued jobs to the broker
    now = timezone.now()
    rescued = leases.rescue_expired("default", now, requeued=redis_backend.broker.publish)
    # Then it is READY and in Redis straight away
    assert rescued == 1
    assert ready_ids(redis_db) == [result.id]


# --- waking -----------------------------------------------------------------------------------
def test_listener_wakes_the_worker_when_a_job_is_published(redis_backend):
    # Given a listening broker
    wake = threading.Event()
    broker = redis_backend.broker
    broker.listen(wake, ["default"])
    try:
        # When a job is enqueued
        on_redis(tasks.add).enqueue(1, 2)
        # Then the blocking pop wakes the worker
        assert wake.wait(10)
    finally:
        broker.close()


def test_listener_reconnects_after_its_connection_is_killed(redis_backend, redis_db):
    # Given a listening broker whose Redis connection the server then drops
    wake = threading.Event()
    broker = redis_backend.broker
    broker.listen(wake, ["default"])
    try:
        name = "django_jobs:redis:listen"

        def listener_id():
            for client in redis_db.client_list():
                if client.get("name") == name:
                    return client["id"]
            return None

        from tests.conftest import wait_for

        redis_db.client_kill_filter(_id=wait_for(listener_id, 10))
        # When a job is enqueued after the listener reconnected
        wait_for(listener_id, 15, message="the listener to reconnect")
        wake.clear()
        on_redis(tasks.add).enqueue(1, 2)
        # Then the worker is woken
        assert wake.wait(10)
    finally:
        broker.close()
