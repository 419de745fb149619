"""Cancellation: queued jobs at once, running ones cooperatively then by force, in real workers."""

from datetime import timedelta

import pytest
from django.utils import timezone

import django_jobs
from django_jobs.jobs import leases, operations
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import TaskResultStatus, task_backends
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from tests import tasks
from tests.conftest import wait_for

CANCELLED = "django_jobs.exceptions.JobCancelled"


def row(result) -> Job:
    return Job.objects.get(pk=result.id)


def claim(worker_id="worker-a"):
    [job] = task_backends["default"].broker.claim(worker_id, [], 1, timezone.now())
    return job


def call(task, args, kwargs):
    return task.func(*args, **kwargs)


# --- the row ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_cancel_a_queued_job_ends_it_with_an_error_entry():
    # Given a queued job
    result = tasks.add.enqueue(1, 2)
    # When it is cancelled through the public helper
    assert django_jobs.cancel(result) is True
    # Then it is CANCELLED, with an entry saying so; Django sees FAILED
    job = row(result)
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    [error] = job.errors
    assert error["exception_class_path"] == CANCELLED
    assert "cancelled before it started" in error["traceback"]
    result.refresh()
    assert result.status == TaskResultStatus.FAILED


@pytest.mark.django_db
def test_cancel_by_id_and_twice():
    result = tasks.add.enqueue(1, 2)
    assert django_jobs.cancel(result.id) is True
    assert django_jobs.cancel(result.id) is False


@pytest.mark.django_db
def test_cancel_leaves_finished_jobs_alone():
    result = tasks.add.enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(status=JobStatus.SUCCESSFUL)
    assert django_jobs.cancel(result) is False
    assert row(result).status == JobStatus.SUCCESSFUL


@pytest.mark.django_db
def test_cancel_a_running_job_flags_it():
    # Given a running job
    result = tasks.add.enqueue(1, 2)
    claim()
    # When it is cancelled
    assert operations.cancel("default", [result.id]) == 1
    # Then it still runs, flagged; a second request changes nothing
    job = row(result)
    assert job.status == JobStatus.RUNNING and job.cancel_requested_at is not None
    assert operations.cancel("default", [result.id]) == 0


@pytest.mark.django_db
def test_heartbeat_reads_cancel_flags_in_one_query(django_assert_num_queries):
    # Given a worker running five jobs, two of them flagged
    results = [tasks.add.enqueue(i, i) for i in range(5)]
    task_backends["default"].broker.claim("worker-a", [], 5, timezone.now())
    operations.cancel("default", [results[1].id, results[3].id])
    ids = [r.id for r in results]
    # When the heartbeat asks which were cancelled
    with django_assert_num_queries(1):
        flagged = leases.cancel_requested("default", "worker-a", ids)
    # Then it gets exactly those; another worker's heartbeat sees none of them
    assert {str(pk) for pk in flagged} == {results[1].id, results[3].id}
    assert leases.cancel_requested("default", "worker-b", ids) == []


@pytest.mark.django_db
def test_expired_flagged_job_is_cancelled_not_requeued():
    # Given a flagged running job whose worker died
    result = tasks.add.enqueue(1, 2)
    claim()
    django_jobs.cancel(result)
    Job.objects.filter(pk=result.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    # When it is rescued
    assert leases.rescue_expired("default", timezone.now()) == 1
    # Then it ends CANCELLED instead of running again
    assert row(result).status == JobStatus.CANCELLED


@pytest.mark.django_db
def test_shutdown_hands_back_unflagged_jobs_and_cancels_flagged_ones():
    kept, cancelled = tasks.add.enqueue(1, 2), tasks.add.enqueue(3, 4)
    task_backends["default"].broker.claim("worker-a", [], 2, timezone.now())
    django_jobs.cancel(cancelled)
    handed = Job.objects.held_by("worker-a").requeue()
    assert handed == 1
    assert row(kept).status == JobStatus.READY
    assert row(cancelled).status == JobStatus.CANCELLED


@pytest.mark.django_db
def test_retry_of_a_cancelled_job_clears_the_flag():
    result = tasks.add.enqueue(1, 2)
    claim()
    django_jobs.cancel(result)
    Job.objects.filter(pk=result.id).update(status=JobStatus.CANCELLED)
    assert operations.retry("default", [result.id]) == 1
    job = row(result)
    assert (job.status, job.cancel_requested_at) == (JobStatus.READY, None)


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_a_cancel_request_is_not_retried():
    # Given a retryable failing job whose cancellation was requested while it ran
    result = tasks.always_fails.enqueue()
    attempt = Attempt(claim(), "worker-a", task_backends["default"])
    attempt.cancelled.set()
    # When it fails
    run_attempt(attempt, call)
    # Then it ends CANCELLED at its first attempt
    job = row(result)
    assert (job.status, job.attempts) == (JobStatus.CANCELLED, 1)


# --- real workers -------------------------------------------------------------------------
def started(path):
    return lambda: path.exists()


def cancelled(result):
    return lambda: row(result).status == JobStatus.CANCELLED


@pytest.mark.processes
def test_running_job_stops_cooperatively_and_the_worker_goes_on(spawn_worker, tmp_path):
    # Given a worker running a job that checks context.raise_if_cancelled()
    marker = tmp_path / "started"
    result = tasks.stops_when_cancelled.enqueue(str(marker))
    worker = spawn_worker()
    wait_for(started(marker), message="the job to start")
    # When the job is cancelled
    assert django_jobs.cancel(result)
    # Then it ends CANCELLED with its own traceback, at its first attempt
    wait_for(cancelled(result), message=f"the job to be cancelled\n{worker.output()}")
    job = row(result)
    assert job.attempts == 1
    assert job.errors[-1]["exception_class_path"] == CANCELLED
    assert "raise_if_cancelled" in job.errors[-1]["traceback"]
    # And the worker runs the next job
    after = tasks.add.enqueue(2, 2)
    wait_for(lambda: row(after).status == JobStatus.SUCCESSFUL, message="the next job")
    assert "interrupting" not in worker.output()


@pytest.mark.processes
def test_job_ignoring_cancellation_is_stopped_after_its_grace(spawn_worker, tmp_path):
    # Given a worker running a job that never checks for cancellation (grace 0.5 s)
    marker = tmp_path / "started"
    result = tasks.ignores_cancel.enqueue(str(marker))
    worker = spawn_worker()
    wait_for(started(marker), message="the job to start")
    # When it is cancelled
    django_jobs.cancel(result)
    # Then the worker interrupts it: CANCELLED, and the same process goes on
    wait_for(cancelled(result), message=f"the job to be stopped\n{worker.output()}")
    assert "interrupting" in worker.output() and "JobCancelled" in worker.output()
    after = tasks.add.enqueue(2, 2)
    wait_for(lambda: row(after).status == JobStatus.SUCCESSFUL, message="the next job")
    assert worker.proc.poll() is None


@pytest.mark.processes
def test_async_job_ignoring_cancellation_is_cancelled(spawn_worker, tmp_path):
    marker = tmp_path / "started"
    result = tasks.async_ignores_cancel.enqueue(str(marker))
    worker = spawn_worker()
    wait_for(started(marker), message="the job to start")
    django_jobs.cancel(result)
    wait_for(cancelled(result), message=f"the async job to be cancelled\n{worker.output()}")
    assert row(result).errors[-1]["exception_class_path"] == CANCELLED
