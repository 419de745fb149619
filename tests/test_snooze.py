"""Outcomes a task chooses: Snooze (later, attempt given back), Discard (CANCELLED), progress."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import Snooze
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import TaskResultStatus, task_backends, task_finished
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from tests import tasks
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def call(task, args, kwargs):
    return task.func(*args, **kwargs)


def claim_and_run(worker_id="worker-a") -> Attempt:
    [job] = task_backends["default"].broker.claim(worker_id, [], 1, timezone.now())
    return run_attempt(Attempt(job, worker_id, task_backends["default"]), call=call)


def row(result) -> Job:
    return Job.objects.get(pk=result.id)


# --- snooze -------------------------------------------------------------------------------
def test_snooze_queues_the_job_later_and_gives_the_attempt_back():
    # Given a job allowed one attempt that snoozes for a minute on its first run
    result = tasks.snoozes_once.enqueue(seconds=60)
    before = timezone.now()
    # When it runs
    attempt = claim_and_run()
    # Then it is READY a minute later, with one more attempt allowed and no error recorded
    job = row(result)
    assert attempt.outcome == TaskResultStatus.READY
    assert (job.status, job.attempts, job.max_attempts) == (JobStatus.READY, 1, 2)
    assert job.errors == [] and job.claimed_by is None and job.lease_expires_at is None
    assert before + timedelta(seconds=59) < job.run_after < before + timedelta(seconds=61)


def test_snoozed_job_runs_again_and_succeeds():
    result = tasks.snoozes_once.enqueue(seconds=0)
    claim_and_run()
    claim_and_run()
    job = row(result)
    assert (job.status, job.return_value, job.attempts) == (JobStatus.SUCCESSFUL, 2, 2)


def test_snooze_does_not_spend_the_retry_budget():
    # Given a job with one attempt that snoozes, then fails
    result = tasks.snoozes_then_fails.enqueue()
    claim_and_run()
    # When it fails after the snooze
    claim_and_run()
    # Then it ran twice, and the failure is final: the budget was its one real attempt
    job = row(result)
    assert (job.status, job.attempts, job.max_attempts) == (JobStatus.FAILED, 2, 2)
    assert len(job.errors) == 1


def test_snooze_sends_no_task_finished():
    finished = []

    def receiver(sender, task_result, **kwargs):
        finished.append(task_result.status)

    task_finished.connect(receiver)
    try:
        tasks.snoozes_once.enqueue(seconds=0)
        claim_and_run()
        assert finished == []
        claim_and_run()
        assert finished == [TaskResultStatus.SUCCESSFUL]
    finally:
        task_finished.disconnect(receiver)


def test_snooze_of_a_cancelled_job_cancels_it():
    result = tasks.snoozes_once.enqueue(seconds=0)
    [job] = task_backends["default"].broker.claim("worker-a", [], 1, timezone.now())
    attempt = Attempt(job, "worker-a", task_backends["default"])
    attempt.cancelled.set()
    run_attempt(attempt, call)
    assert row(result).status == JobStatus.CANCELLED


def test_snooze_accepts_a_timedelta():
    assert Snooze(timedelta(minutes=1)).seconds == 60.0
    assert Snooze(-5).seconds == 0.0


# --- discard ------------------------------------------------------------------------------
def test_discard_ends_the_job_cancelled_with_its_reason_and_no_retry():
    # Given a job allowed five attempts that discards itself
    result = tasks.discards.enqueue("user deleted")
    # When it runs
    claim_and_run()
    # Then it is CANCELLED after one attempt, the reason recorded; Django sees FAILED
    job = row(result)
    assert (job.status, job.attempts) == (JobStatus.CANCELLED, 1)
    [error] = job.errors
    assert error["exception_class_path"] == "django_jobs.exceptions.Discard"
    assert "user deleted" in error["traceback"]
    result.refresh()
    assert result.status == TaskResultStatus.FAILED


# --- progress -----------------------------------------------------------------------------
@pytest.mark.processes
def test_progress_is_visible_while_the_job_runs(spawn_worker, tmp_path):
    # Given a worker running a job that reports half its progress, then waits
    release = tmp_path / "release"
    result = tasks.progress_then_wait.enqueue(str(release))
    spawn_worker()
    # Then readers see the progress while it is RUNNING
    half = {"current": 1, "total": 2, "message": "half way"}
    wait_for(lambda: row(result).progress == half, message="progress while running")
    assert row(result).status == JobStatus.RUNNING
    # And the last report stays once it finished
    release.touch()
    wait_for(lambda: row(result).status == JobStatus.SUCCESSFUL, message="the job to finish")
    assert row(result).progress == {"current": 2, "total": 2, "message": "done"}


@pytest.mark.processes
def test_snooze_in_a_real_worker(spawn_worker):
    result = tasks.snoozes_once.enqueue(seconds=0.2)
    spawn_worker()
    wait_for(lambda: row(result).status == JobStatus.SUCCESSFUL, message="the snoozed job")
    assert (row(result).attempts, row(result).return_value) == (2, 2)
