"""The ``jobs`` operator command and the services it shares with the admin."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from tests import tasks

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def finish(result, status, ago=timedelta(0)):
    Job.objects.filter(pk=result.id).update(status=status, finished_at=timezone.now() - ago)


def test_stats_counts_jobs_per_queue_and_status():
    # Given two ready jobs in "default" and one failed in "emails"
    tasks.add.enqueue(1, 2)
    tasks.add.enqueue(3, 4)
    finish(tasks.other_queue.enqueue(1), JobStatus.FAILED)
    # When
    stats = json.loads(run("stats", "--json"))
    # Then
    assert stats["queues"]["default"]["READY"] == 2
    assert stats["queues"]["emails"]["FAILED"] == 1
    assert stats["live_workers"] == 0


def test_retry_requeues_failed_jobs_with_a_fresh_attempt_budget():
    # Given a job that failed after using its single attempt
    result = tasks.add.enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(status=JobStatus.FAILED, attempts=1, max_attempts=1)
    # When
    out = run("retry", result.id)
    # Then
    job = Job.objects.get(pk=result.id)
    assert "retried 1" in out
    assert (job.status, job.max_attempts, job.finished_at) == (JobStatus.READY, 2, None)


def test_retry_leaves_successful_jobs_alone():
    result = tasks.add.enqueue(1, 2)
    finish(result, JobStatus.SUCCESSFUL)
    assert "retried 0" in run("retry", result.id)
    assert Job.objects.get(pk=result.id).status == JobStatus.SUCCESSFUL


def test_cancel_ends_ready_jobs_and_flags_running_ones():
    # Given a ready job and a running one
    ready = tasks.add.enqueue(1, 2)
    running = tasks.add.enqueue(3, 4)
    Job.objects.filter(pk=running.id).update(status=JobStatus.RUNNING)
    # When both are cancelled
    out = run("cancel", ready.id, running.id, "--yes")
    # Then the ready one is CANCELLED (FAILED to Django) and the running one is asked to stop
    assert "cancelled 2" in out
    assert Job.objects.get(pk=ready.id).status == JobStatus.CANCELLED
    running_job = Job.objects.get(pk=running.id)
    assert running_job.status == JobStatus.RUNNING
    assert running_job.cancel_requested_at is not None
    ready.refresh()
    assert ready.status == "FAILED"


def test_purge_deletes_only_old_finished_jobs():
    old = tasks.add.enqueue(1, 2)
    finish(old, JobStatus.SUCCESSFUL, ago=timedelta(days=40))
    recent = tasks.add.enqueue(1, 2)
    finish(recent, JobStatus.SUCCESSFUL, ago=timedelta(days=1))
    pending = tasks.add.enqueue(1, 2)
    assert "deleted 1" in run("purge", "--older-than", "30d", "--yes")
    assert set(Job.objects.values_list("pk", flat=True)) == {
        Job.objects.get(pk=recent.id).pk,
        Job.objects.get(pk=pending.id).pk,
    }


def test_purge_rejects_a_malformed_duration():
    with pytest.raises(CommandError):
        run("purge", "--older-than", "thirty days")


def test_prune_workers_deletes_silent_worker_rows():
    now = timezone.now()
    for name, beat in (("old", now - timedelta(days=3)), ("fresh", now)):
        Worker.objects.create(id=name, hostname="h", pid=1, started_at=beat, last_heartbeat_at=beat)
    assert "deleted 1" in run("prune-workers", "--older-than", "1d", "--yes")
    assert list(Worker.objects.values_list("pk", flat=True)) == ["fresh"]


def test_enqueue_runs_a_declared_task_by_path():
    job_id = run("enqueue", "tests.tasks.add", "--args", "[2, 3]", "--queue", "reports").strip()
    job = Job.objects.get(pk=job_id)
    assert (job.task_path, job.args, job.queue_name) == ("tests.tasks.add", [2, 3], "reports")


def test_enqueue_refuses_a_path_that_is_not_a_task():
    with pytest.raises(CommandError, match="not a declared task"):
        run("enqueue", "os.system", "--args", '["echo hi"]')
    assert not Job.objects.exists()


def test_enqueue_rejects_args_that_are_not_a_json_list():
    with pytest.raises(CommandError):
        run("enqueue", "tests.tasks.add", "--args", '{"a": 1}')
