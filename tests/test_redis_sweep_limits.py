"""The Redis broker's sweeper and limited jobs (rate or concurrency limits).

Limited jobs are never published to Redis: they are claimed from the database through their
gate. The sweeper's repair window and the rescue of expired leases must keep them out too, or
a backlog of limited jobs hides an ordinary job whose push was lost.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.brokers.redis.sweep import SWEEP_BATCH
from django_jobs.jobs import leases
from django_jobs.jobs.inserts import insert_job
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from tests import tasks
from tests.conftest import wait_for

pytestmark = pytest.mark.redis


def on_redis(task):
    return task.using(backend="redis")


def within(seconds: float, predicate) -> bool:
    """Whether ``predicate`` comes true within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def status(job_id) -> str:
    return Job.objects.get(pk=job_id).status


@pytest.mark.processes
def test_lost_ordinary_job_runs_promptly_behind_a_backlog_of_limited_jobs(
    redis_backend, redis_db, spawn_worker
):
    # Given more rate-limited jobs waiting on their gate than one repair window holds, mixed
    # with ordinary jobs
    limited, plain = on_redis(tasks.three_per_minute), on_redis(tasks.add)
    calls = [(limited, (i,), {}) for i in range(SWEEP_BATCH + 100)]
    calls[::100] = [(plain, (i, i), {}) for i in range(len(calls[::100]))]
    redis_backend.enqueue_many(calls)
    # And a worker on the Redis broker (its sweeper runs every heartbeat, 0.5 s here)
    worker = spawn_worker("--backend", "redis")
    wait_for(lambda: Job.objects.filter(status=JobStatus.SUCCESSFUL).exists(), 30,
             message="the first limited jobs to run")  # fmt: skip
    # When Redis loses everything mid-run, and the sweeper has resynced it (again: it did
    # once at start)
    resyncs = worker.output().count("resynced")
    redis_db.flushdb()
    wait_for(lambda: worker.output().count("resynced") > resyncs, 30, message="a resync")
    # And then an ordinary job is written whose push to Redis was lost (as when Redis did
    # not answer at commit: the row is the truth, the sweeper must publish it)
    job = redis_backend.build_job(on_redis(tasks.add), (2, 3), {})
    insert_job(redis_backend.database, job)
    # Then the sweeper's repair window finds it behind the limited backlog, and it runs
    # within a few sweeps (a liveness bound, not a speed one)
    ran = within(15, lambda: status(job.pk) == JobStatus.SUCCESSFUL)
    assert ran, f"still {status(job.pk)}; worker log:\n{worker.output()[-3000:]}"
    # And every ordinary job ran, while the limited ones still wait on their gate (3 a minute)
    assert not Job.objects.filter(task_path=plain.module_path).exclude(status=JobStatus.SUCCESSFUL)
    assert Job.objects.filter(status=JobStatus.READY).count() >= SWEEP_BATCH


def test_rescued_limited_job_goes_back_to_the_gated_path_not_redis(
    transactional_db, redis_backend, redis_db
):
    # Given a limited job claimed (through its gate) by a worker that then died
    result = on_redis(tasks.five_per_second).using(max_attempts=3).enqueue(1)
    broker = redis_backend.broker
    broker.sweep(timezone.now())
    [claimed] = broker.claim("worker-a", [], 1, timezone.now())
    assert str(claimed.pk) == result.id
    Job.objects.filter(pk=result.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    # When its lease is rescued, the requeued job handed to the broker as a worker does
    assert leases.rescue_expired(redis_backend.database, timezone.now(), requeued=broker.publish)
    # Then it is READY again but not pushed into Redis: limited jobs are claimed from the
    # database through their gate
    assert status(result.id) == JobStatus.READY
    assert redis_db.zscore(broker.store.keys.ready("default"), result.id) is None
    assert redis_db.zcard(broker.store.keys.delayed("default")) == 0
    # And the gated claim takes it again
    broker.sweep(timezone.now())
    [again] = broker.claim("worker-b", [], 1, timezone.now())
    assert (str(again.pk), again.attempts) == (result.id, 2)
