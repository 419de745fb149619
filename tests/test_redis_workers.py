"""Real ``runworker --backend redis`` processes against real Redis and the test database."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.brokers.redis.store import epoch_ms
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from tests import tasks
from tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.processes]


def on_redis(task):
    return task.using(backend="redis")


def successful() -> int:
    return Job.objects.filter(status=JobStatus.SUCCESSFUL).count()


def recorded(path) -> list[int]:
    return sorted(int(v) for v in path.read_text().split()) if path.exists() else []


def test_two_workers_run_every_job_exactly_once(redis_backend, spawn_worker, tmp_path):
    # Given two worker processes on the Redis broker, both up
    workers = [spawn_worker("--backend", "redis", "--concurrency", "4") for _ in range(2)]
    live = Worker.objects.filter(stopped_at__isnull=True)
    wait_for(lambda: live.count() == 2, 30, message="both workers to register")
    # And then many jobs
    path = tmp_path / "ran.txt"
    job = on_redis(tasks.record_then_sleep)
    redis_backend.enqueue_many([(job, (str(path), i, 0.02), {}) for i in range(80)])
    # When they have run everything
    wait_for(lambda: successful() == 80, 60, message="80 jobs to succeed")
    # Then each job ran exactly once, and both workers took part
    assert recorded(path) == list(range(80))
    claimers = set(Job.objects.values_list("claimed_by", flat=True))
    assert len(claimers) == 2, [w.output() for w in workers]


def test_nothing_is_lost_when_redis_is_flushed_mid_run(
    redis_backend, redis_db, spawn_worker, tmp_path
):
    # Given ready and delayed jobs and a worker taking them one by one
    path = tmp_path / "ran.txt"
    calls = [(on_redis(tasks.record_then_sleep), (str(path), i, 0.05), {}) for i in range(40)]
    soon = on_redis(tasks.record).using(run_after=timezone.now() + timedelta(seconds=2))
    calls += [(soon, (str(path), 100 + i), {}) for i in range(2)]
    redis_backend.enqueue_many(calls)
    worker = spawn_worker("--backend", "redis", "--concurrency", "2")
    wait_for(lambda: successful() >= 5, 30, message="the first jobs to run")
    # When Redis loses everything (a restart without persistence, a failover, FLUSHDB)
    redis_db.flushdb()
    # Then the worker's sweeper restores dispatch and every job runs exactly once
    wait_for(lambda: successful() == 42, 60, message="every job despite the flush")
    assert recorded(path) == [*range(40), 100, 101], worker.output()
    assert "resynced" in worker.output()


def test_burst_worker_runs_jobs_redis_lost_before_it_started(redis_backend, redis_db, spawn_worker):
    # Given jobs enqueued, then Redis restarted empty
    results = [on_redis(tasks.add).enqueue(i, i) for i in range(5)]
    redis_db.flushdb()
    # When a burst worker starts (it sweeps before its first claim)
    worker = spawn_worker("--burst", "--backend", "redis")
    # Then it runs them all, then exits
    assert worker.wait(60) == 0, worker.output()
    assert successful() == len(results)


def test_job_of_a_sigkilled_worker_is_rescued_and_run_by_another(
    redis_backend, spawn_worker, tmp_path
):
    # Given a job running on a worker that is then SIGKILLed
    path = tmp_path / "ran.txt"
    task = on_redis(tasks.record_and_sleep_on_first_attempt).using(max_attempts=2)
    result = task.enqueue(str(path), 1, 30)
    victim = spawn_worker("--backend", "redis")
    wait_for(lambda: recorded(path) == [1], 30, message="the job to start")
    victim.kill_all()
    # When another worker runs (its heartbeat rescues the job after the lease)
    spawn_worker("--backend", "redis")
    # Then the job runs again and succeeds on its second attempt
    wait_for(lambda: successful() == 1, 60, message="the rescued job to succeed")
    job = Job.objects.get(pk=result.id)
    assert (job.attempts, recorded(path)) == (2, [1, 1])


def test_id_popped_by_a_claimer_that_died_is_run_after_the_lease(
    redis_backend, spawn_worker, tmp_path
):
    # Given a job whose id a claimer moved to in-flight before it died (no database claim)
    path = tmp_path / "ran.txt"
    result = on_redis(tasks.record).enqueue(str(path), 7)
    store = redis_backend.broker.store
    assert store.pop(["default"], 1, epoch_ms(timezone.now()), 3000) == [result.id]
    # When a worker runs
    spawn_worker("--backend", "redis")
    # Then its sweeper reclaims the id after the lease, and the job runs once
    wait_for(lambda: successful() == 1, 30, message="the reclaimed job to run")
    assert recorded(path) == [7]
    assert Job.objects.get(pk=result.id).attempts == 1


def test_retries_go_back_through_redis(redis_backend, spawn_worker):
    # Given a job that fails its first attempt
    result = on_redis(tasks.fails_until).enqueue(succeed_on=2)
    # When a worker runs it
    spawn_worker("--backend", "redis", options={"heartbeat_interval": 1.5})
    # Then the retry is published and the second attempt succeeds
    wait_for(lambda: successful() == 1, 30, message="the retry to succeed")
    result.refresh()
    assert (result.return_value, len(result.errors)) == (2, 1)


def test_worker_waits_on_redis_instead_of_polling_the_database(
    redis_backend, spawn_worker, tmp_path
):
    # Given an idle worker that polls rarely: only a wake-up can make it fast
    worker = spawn_worker("--backend", "redis", options={"poll_interval": 30})
    wait_for(lambda: "worker started" in worker.output(), 30, message="the worker to start")
    time.sleep(1.5)  # let its listener block on the wake-up list
    # When a job is enqueued
    result = on_redis(tasks.add).enqueue(2, 3)
    # Then it runs well before the poll interval would have let it
    wait_for(lambda: successful() == 1, 15, message="the job to be picked up on wake-up")
    result.refresh()
    assert result.return_value == 5
