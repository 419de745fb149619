"""Retention: finished jobs pruned past their status's retention, in bounded batches, by the
worker's heartbeat and by ``manage.py jobs prune``; what is never pruned."""

import time
import uuid
from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs.conf import JobsOptions
from django_jobs.jobs import retention
from django_jobs.jobs.inserts import insert_jobs, insert_succeeded
from django_jobs.jobs.models import JobMinute, Workflow, new_job
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.worker.process import WorkerProcess
from tests import tasks
from tests.conftest import wait_for
from tests.test_jobs_cli import jobs as jobs_command

pytestmark = pytest.mark.django_db(transaction=True)

DAY = timedelta(days=1)
#: The defaults: SUCCESSFUL 7 days, FAILED 30, CANCELLED 7; counters 8 days.
PERIODS = JobsOptions().retention_periods()
HISTORY = JobsOptions().history


def rows(count: int, status: str = JobStatus.SUCCESSFUL, ago: timedelta = 10 * DAY, **fields):
    """Insert ``count`` job rows of ``status``, finished ``ago`` (unfinished: not finished)."""
    now = timezone.now()
    jobs = [
        new_job(
            task_path="tests.tasks.add",
            args=[1, 2],
            run_after=now - ago,
            enqueued_at=now - ago,
            **fields,
        )
        for _ in range(count)
    ]
    if status == JobStatus.SUCCESSFUL:
        insert_succeeded("default", jobs, now - ago, [3] * count)
    else:
        for job in jobs:
            job.status = status
            job.finished_at = None if status in retention.UNFINISHED else now - ago
        insert_jobs("default", jobs)
    return [job.pk for job in jobs]


def deletes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("DELETE")]


def long_history() -> int:
    """Rows of the long history: 100,000 on PostgreSQL (the postgresql runs), fewer elsewhere,
    where they would only repeat the same batches at several times the CI time."""
    return 100_000 if connection.vendor == "postgresql" else 20_000


def test_a_long_history_is_pruned_in_bounded_batches_keeping_recent_and_unfinished_jobs():
    # Given 100,000 jobs that succeeded 10 days ago (20,000 off PostgreSQL), and jobs that must
    # stay: recent successes, failures within their 30 days, and jobs not finished
    history = long_history()
    rows(history)
    kept = rows(10, ago=DAY) + rows(10, JobStatus.FAILED) + rows(10, JobStatus.READY)
    kept += rows(10, JobStatus.RUNNING) + rows(10, JobStatus.BLOCKED)
    old_cancelled = rows(10, JobStatus.CANCELLED)
    # When workers' passes prune them, one call per heartbeat
    passes = []
    while True:
        with CaptureQueriesContext(connection) as queries:
            deleted = retention.prune("default", timezone.now(), PERIODS, HISTORY)
        passes.append((sum(deleted.values()), deletes(queries)))
        if not sum(deleted.values()):
            break
    # Then each pass deleted a few batches at most, each statement a batch at most
    for count, statements in passes:
        assert count <= retention.BATCH * retention.BATCHES
        assert len(statements) <= retention.BATCHES
    assert sum(count for count, _ in passes) == history + 10
    assert len(passes) >= history // (retention.BATCH * retention.BATCHES)
    # And what is within its retention, or unfinished, is still there; nothing else is
    assert set(Job.objects.values_list("pk", flat=True)) == set(kept)
    assert not Job.objects.filter(pk__in=old_cancelled).exists()


def test_a_status_kept_forever_is_never_pruned():
    # Given old successes and failures, and failures kept forever
    rows(5)
    failures = rows(5, JobStatus.FAILED, ago=400 * DAY)
    periods = {**PERIODS, JobStatus.FAILED: None}
    # When everything is pruned
    deleted = retention.prune("default", timezone.now(), periods, HISTORY, batches=None)
    # Then only the successes went
    assert deleted[JobStatus.SUCCESSFUL] == 5 and JobStatus.FAILED not in deleted
    assert set(Job.objects.values_list("pk", flat=True)) == set(failures)


def test_the_steps_of_a_workflow_with_a_step_to_run_are_kept_until_it_ends():
    # Given a workflow whose first step succeeded long ago and whose second still waits
    workflow = Workflow.objects.create(created_at=timezone.now() - 10 * DAY)
    [done] = rows(1, workflow_id=workflow.pk)
    [waiting] = rows(1, JobStatus.BLOCKED, workflow_id=workflow.pk)
    # When retention runs
    retention.prune("default", timezone.now(), PERIODS, HISTORY, batches=None)
    # Then both steps are kept (the second will read the first's result)
    assert Job.objects.filter(pk__in=[done, waiting]).count() == 2
    # And once the workflow ended long ago, its steps and the workflow itself are pruned
    Job.objects.filter(pk=waiting).update(
        status=JobStatus.SUCCESSFUL, finished_at=timezone.now() - 10 * DAY
    )
    deleted = retention.prune("default", timezone.now(), PERIODS, HISTORY, batches=None)
    assert deleted[JobStatus.SUCCESSFUL] == 2 and deleted["workflows"] == 1
    assert not Workflow.objects.exists()


def test_a_job_inside_its_unique_for_window_is_kept():
    # Given two old unique jobs, one whose unique_for window is still open
    now = timezone.now()
    [open_] = rows(1, unique_key=uuid.uuid4().hex, unique_until=now + DAY)
    [closed] = rows(1, unique_key=uuid.uuid4().hex, unique_until=now - DAY)
    # When retention runs
    retention.prune("default", now, PERIODS, HISTORY, batches=None)
    # Then the job holding its key's window stays; the other went (its key is free)
    assert list(Job.objects.values_list("pk", flat=True)) == [open_]
    assert closed


def test_the_dashboards_counters_have_their_own_retention():
    # Given per-minute counters from 9 days ago and from today
    now = timezone.now().replace(second=0, microsecond=0)
    JobMinute.objects.create(minute=now - 9 * DAY, queue_name="")
    JobMinute.objects.create(minute=now - timedelta(hours=1), queue_name="")
    # When retention runs with counters kept 8 days, then forever
    assert retention.prune("default", now, PERIODS, None)["minutes"] == 0
    assert retention.prune("default", now, PERIODS, HISTORY)["minutes"] == 1
    # Then only today's counter is left
    assert list(JobMinute.objects.values_list("minute", flat=True)) == [now - timedelta(hours=1)]


def test_retention_options_are_checked(settings):
    # Given retention OPTIONS of the wrong shape
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "OPTIONS": {
                "retention": {"SUCCESSFUL": -1, "READY": 1},
                "prune_interval": 0,
                "history_retention": 0.5,
            },
        }
    }
    # When the system checks run
    errors = [e for e in run_checks() if e.id == "django_jobs.E020"]
    # Then each key is reported with what it takes
    assert sorted(e.msg.split(" is ")[0] for e in errors) == [
        "TASKS['default']['OPTIONS']['history_retention']",
        "TASKS['default']['OPTIONS']['prune_interval']",
        "TASKS['default']['OPTIONS']['retention']",
    ]
    assert any("days per finished status" in e.hint for e in errors)


# --- the heartbeat -------------------------------------------------------------------------
@pytest.fixture
def process(fast_backend):
    """A worker process registered but not started: nobody beats but the test."""
    worker = WorkerProcess()
    worker.started_at = timezone.now()
    worker.worker_id = worker._register()
    yield worker
    worker.pool.shutdown()
    worker.broker.close()


def test_the_heartbeat_prunes_when_due_and_not_again_within_the_interval(process):
    # Given old successes, and a prune pass due
    rows(3)
    process.heartbeat.next_prune = time.monotonic()
    # When the heartbeat beats
    process.heartbeat.heartbeat_once(timezone.now())
    # Then they are gone
    assert not Job.objects.exists()
    # And old jobs found a beat later wait for the next pass, prune_interval (300 s) away
    rows(3)
    process.heartbeat.heartbeat_once(timezone.now())
    assert Job.objects.count() == 3
    assert process.heartbeat.next_prune > time.monotonic() + 250


# --- manage.py jobs prune -----------------------------------------------------------------
def test_jobs_prune_dry_run_counts_and_deletes_nothing_then_prune_deletes():
    # Given old successes and failures, and recent ones
    rows(3)
    rows(2, JobStatus.CANCELLED)
    rows(4, JobStatus.FAILED, ago=40 * DAY)
    recent = rows(2, ago=DAY) + rows(2, JobStatus.FAILED)
    # When `jobs prune --dry-run` runs
    dry = jobs_command("prune", "--dry-run")
    # Then it prints the counts in one line, exit 0, and nothing is deleted
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == (
        "would delete 9 job(s) (SUCCESSFUL=3 FAILED=4 CANCELLED=2), 0 workflow(s), "
        "0 counter row(s) (dry run, nothing changed)"
    )
    assert Job.objects.count() == 13
    # And `jobs prune` deletes them, saying how many, in one line
    done = jobs_command("prune")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "deleted 9 job(s) (SUCCESSFUL=3 FAILED=4 CANCELLED=2), 0 workflow(s), 0 counter row(s)"
    )
    assert set(Job.objects.values_list("pk", flat=True)) == set(recent)


# --- a real worker ------------------------------------------------------------------------
def test_a_running_worker_prunes_old_jobs_in_its_heartbeat(spawn_worker):
    # Given 12,000 jobs that succeeded two days ago (more than one pass deletes)
    rows(12_000, ago=2 * DAY)
    # When a worker runs with successes kept one day, pruning every half second
    options = {"retention": {"SUCCESSFUL": 1}, "prune_interval": 0.5}
    worker = spawn_worker(options=options)
    result = tasks.add.enqueue(2, 2)
    # Then the old jobs are pruned, and the job it just ran is kept
    wait_for(
        lambda: Job.objects.count() == 1 and Job.objects.get().status == JobStatus.SUCCESSFUL,
        timeout=60,
        message=f"the old jobs to be pruned\n{worker.output()}",
    )
    assert str(Job.objects.get().pk) == result.id
    assert "pruned successful=" in worker.output()
