"""One beat of a worker's heartbeat, driven directly: ``Heartbeat.heartbeat_once(now)``."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.jobs import claims
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from django_jobs.worker.process import WorkerProcess
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(fast_backend):
    """A worker process registered but not started: nobody beats but the test."""
    process = WorkerProcess()
    process.started_at = timezone.now()
    process.worker_id = process._register()
    yield process
    process.pool.shutdown()
    process.broker.close()


def claim(result, worker_id: str, lease: timedelta) -> Job:
    [job] = claims.claim_ids("default", "default", [result.id], worker_id, timezone.now(), lease)
    return job


def test_heartbeat_once_renews_the_leases_of_jobs_the_process_still_holds(worker):
    # Given a job this process runs, its lease about to run out
    job = claim(tasks.add.enqueue(1, 2), worker.worker_id, timedelta(seconds=1))
    worker.pool.unfinished.add((str(job.pk), job.attempts))
    before = Job.objects.get(pk=job.pk).lease_expires_at
    beat_before = Worker.objects.get(pk=worker.worker_id).last_heartbeat_at
    # When the heartbeat beats once
    assert worker.heartbeat.heartbeat_once(timezone.now()) is True
    # Then the job's lease runs a whole lease from now, and the worker's row shows the beat
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.RUNNING
    assert row.lease_expires_at >= before + worker.options.lease - timedelta(seconds=2)
    assert Worker.objects.get(pk=worker.worker_id).last_heartbeat_at > beat_before


def test_heartbeat_once_leaves_jobs_the_process_no_longer_holds_to_expire(worker):
    # Given a job claimed by this worker whose outcome was written (no longer in the pool)
    job = claim(tasks.add.enqueue(1, 2), worker.worker_id, timedelta(seconds=1))
    before = Job.objects.get(pk=job.pk).lease_expires_at
    # When the heartbeat beats
    worker.heartbeat.heartbeat_once(timezone.now())
    # Then its lease is not renewed (only what the threads really run is)
    assert Job.objects.get(pk=job.pk).lease_expires_at == before


def test_heartbeat_once_rescues_the_jobs_of_a_worker_that_stopped_beating(worker):
    # Given a job held by a worker that is gone, its lease already run out
    job = claim(tasks.add.using(max_attempts=3).enqueue(3, 4), "gone-worker", timedelta(seconds=-5))
    # When a live worker's heartbeat beats
    worker.heartbeat.heartbeat_once(timezone.now())
    # Then the job is READY again, the lost attempt recorded against the gone worker
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.READY
    assert row.errors[-1]["exception_class_path"] == "django_jobs.exceptions.WorkerLost"
    assert row.errors[-1]["worker_id"] == "gone-worker"
