"""Dispatch behaviour every broker must show, run on the database and the Redis broker."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from tests import tasks
from tests.conftest import wait_for

pytestmark = pytest.mark.processes


def recorded(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_worker_runs_jobs_in_priority_then_age_order(spawn_worker, backend_alias, tmp_path):
    # Given jobs of several priorities, enqueued before any worker runs
    path = tmp_path / "ran.txt"
    task = tasks.record.using(backend=backend_alias)
    for value, priority in [("low", -10), ("first", 0), ("high", 50), ("second", 0)]:
        task.using(priority=priority).enqueue(str(path), value)
    # When one worker with one slot runs them
    worker = spawn_worker("--burst", "--backend", backend_alias)
    # Then they ran by priority, and in enqueue order within a priority
    assert worker.wait(60) == 0, worker.output()
    assert recorded(path) == ["high", "first", "second", "low"]


def test_rolled_back_enqueue_never_runs(spawn_worker, backend_alias, tmp_path):
    # Given one job enqueued in a transaction that rolled back, and one that committed
    path = tmp_path / "ran.txt"
    task = tasks.record.using(backend=backend_alias)
    with pytest.raises(RuntimeError), transaction.atomic():
        task.enqueue(str(path), "rolled-back")
        raise RuntimeError("roll back")
    task.enqueue(str(path), "committed")
    # When a worker runs
    worker = spawn_worker("--burst", "--backend", backend_alias)
    # Then only the committed job ran
    assert worker.wait(60) == 0, worker.output()
    assert recorded(path) == ["committed"]
    assert Job.objects.count() == 1


def test_delayed_job_runs_once_due(spawn_worker, backend_alias, tmp_path):
    # Given a job that may only start in two seconds
    path = tmp_path / "ran.txt"
    run_after = timezone.now() + timedelta(seconds=2)
    result = tasks.record.using(backend=backend_alias, run_after=run_after).enqueue(str(path), "x")
    # When a worker serves the queue
    spawn_worker("--backend", backend_alias)
    # Then the job runs, not before its time
    done = Job.objects.filter(pk=result.id, status=JobStatus.SUCCESSFUL)
    wait_for(done.exists, 30, message="the delayed job to run")
    assert done.get().started_at >= run_after
