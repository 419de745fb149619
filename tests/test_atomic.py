"""Atomic tasks: the task's writes and the job's success commit together, or neither does."""

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from django_jobs.exceptions import InvalidTaskOptions
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import TaskResultStatus, task_backends
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from tests import tasks
from tests.conftest import wait_for

WORKER_LOST = "django_jobs.exceptions.WorkerLost"


def call(task, args, kwargs):
    return task.func(*args, **kwargs)


def claim(worker_id="worker-a"):
    [job] = task_backends["default"].broker.claim(worker_id, [], 1, timezone.now())
    return job


def row(result) -> Job:
    return Job.objects.get(pk=result.id)


@pytest.mark.django_db(transaction=True)
def test_atomic_success_commits_the_row_and_the_result_together():
    # Given an atomic task that writes a row
    result = tasks.atomic_create_group.enqueue("editors")
    # When it runs
    attempt = run_attempt(Attempt(claim(), "worker-a", task_backends["default"]), call)
    # Then both the row and the SUCCESSFUL job are there
    assert attempt.outcome == TaskResultStatus.SUCCESSFUL
    assert Group.objects.filter(name="editors").exists()
    job = row(result)
    assert (job.status, job.return_value) == (JobStatus.SUCCESSFUL, "editors")
    assert job.lease_expires_at is None


@pytest.mark.django_db(transaction=True)
def test_atomic_failure_rolls_the_row_back_and_records_the_failure():
    result = tasks.atomic_create_group.enqueue("editors", fail=True)
    run_attempt(Attempt(claim(), "worker-a", task_backends["default"]), call)
    assert not Group.objects.exists()
    job = row(result)
    assert job.status == JobStatus.FAILED
    assert job.errors[-1]["exception_class_path"] == "builtins.ValueError"


@pytest.mark.django_db(transaction=True)
def test_atomic_task_that_lost_its_lease_writes_nothing():
    # Given an attempt whose job was meanwhile handed to another worker
    result = tasks.atomic_create_group.enqueue("editors")
    job = claim("worker-a")
    Job.objects.filter(pk=result.id).update(claimed_by="worker-b")
    # When the first worker's attempt runs to the end
    attempt = run_attempt(Attempt(job, "worker-a", task_backends["default"]), call)
    # Then its writes are rolled back and the other worker's claim is untouched
    assert attempt.outcome == "LOST"
    assert not Group.objects.exists()
    job = row(result)
    assert (job.status, job.claimed_by, job.errors) == (JobStatus.RUNNING, "worker-b", [])


def test_atomic_async_task_is_rejected():
    with pytest.raises(InvalidTaskOptions, match="sync task"):
        tasks.async_add.using(atomic=True)


def test_atomic_is_stored_when_set_per_call():
    assert tasks.add.using(atomic=True).stored_options() == {"atomic": True}


@pytest.mark.processes
def test_worker_killed_before_commit_leaves_neither_row_nor_success(spawn_worker, tmp_path):
    # Given a worker running an atomic task that has written its row and not yet committed
    marker = tmp_path / "written"
    result = tasks.atomic_group_then_sleep.enqueue("editors", str(marker), 60)
    worker = spawn_worker()
    wait_for(marker.exists, message="the task to write its row")
    # When the worker is SIGKILLed
    worker.kill_all()
    # Then neither the row nor a SUCCESSFUL job exists
    assert not Group.objects.exists()
    assert row(result).status == JobStatus.RUNNING
    # And once rescued, the second attempt commits both, exactly once
    spawn_worker()
    wait_for(lambda: row(result).status == JobStatus.SUCCESSFUL, message="the rescued job")
    assert list(Group.objects.values_list("name", flat=True)) == ["editors"]
    job = row(result)
    assert job.attempts == 2
    assert job.errors[-1]["exception_class_path"] == WORKER_LOST
