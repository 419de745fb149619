"""The real ``manage.py jobs`` process: exit codes (0 done, 1 not found, 2 bad arguments),
one-line errors, ids by prefix, filters, --dry-run, --yes and the terminal confirmation."""

import os
import pty
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Queue
from tests import tasks
from tests.conftest import ROOT, process_env

pytestmark = [pytest.mark.django_db(transaction=True)]


def jobs(*args: str, stdin=subprocess.DEVNULL, env=None) -> subprocess.CompletedProcess:
    """Run ``manage.py jobs <args>`` on the test database; no terminal unless ``stdin`` is one."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "jobs", *args],
        cwd=ROOT,
        env=env or process_env(),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The single line on stderr (never a traceback)."""
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def failed(queue: str = "default", ago: timedelta = timedelta(0)) -> str:
    result = tasks.add.using(queue_name=queue).enqueue(1, 2)
    finished = timezone.now() - ago
    Job.objects.filter(pk=result.id).update(status=JobStatus.FAILED, finished_at=finished)
    return result.id


def status(job_id) -> str:
    return Job.objects.get(pk=job_id).status


@pytest.mark.parametrize("action", ["retry", "cancel"])
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "abc", "zzzzzzzz"])
def test_a_malformed_id_is_one_line_and_exit_2(action, bad_id):
    # Given an id that cannot be a job id (not hex, or shorter than 4 characters)
    # When retry/cancel get it
    done = jobs(action, bad_id)
    # Then one line says so, exit 2
    assert done.returncode == 2
    assert "is not a job id" in one_line_error(done)


def test_retry_by_the_short_id_the_admin_shows():
    # Given a failed job, known by the 8 characters the admin shows
    job_id = failed()
    # When it is retried by that prefix
    done = jobs("retry", job_id[:8])
    # Then it is queued again
    assert (done.returncode, done.stdout.strip()) == (0, "retried 1 job(s)")
    assert status(job_id) == JobStatus.READY


@pytest.mark.parametrize("action", ["retry", "cancel"])
def test_an_unknown_id_is_not_found_with_exit_1(action):
    # Given no job with this id
    missing = str(uuid.uuid4())
    # When retry/cancel get it
    done = jobs(action, missing, "--yes") if action == "cancel" else jobs(action, missing)
    # Then "not found", exit 1, nothing done
    assert done.returncode == 1
    assert "no job id starts with" in one_line_error(done)


@pytest.mark.parametrize(
    ("prefix", "code", "out"),
    [
        ("abcdef010000400080", 0, "retried 1 job(s)"),
        ("abcdef01-0000-4000-8", 0, "retried 1 job(s)"),
        ("ABCDEF01-0000", 1, "'abcdef010000' is ambiguous: 2 job ids start with it"),
    ],
)
def test_a_long_prefix_with_or_without_hyphens(prefix, code, out):
    # Given two failed jobs whose ids share their first 16 hex characters
    for new_id in ("abcdef01-0000-4000-8000-000000000001", "abcdef01-0000-4000-9000-000000000002"):
        Job.objects.filter(pk=failed()).update(id=uuid.UUID(new_id))
    # When one is named by a longer prefix (hyphens as the admin shows them, or none)
    done = jobs("retry", prefix)
    # Then a unique prefix finds it, and a shared one is ambiguous
    assert done.returncode == code, done.stderr
    assert out in (done.stdout if code == 0 else one_line_error(done))


def test_an_ambiguous_prefix_is_an_error_giving_the_count():
    # Given three jobs whose ids share their first 8 characters
    ids = [failed() for _ in range(3)]
    for index, job_id in enumerate(ids):
        Job.objects.filter(pk=job_id).update(
            id=uuid.UUID(f"abcdef01-0000-4000-8000-00000000000{index}")
        )
    # When one is named by that prefix
    done = jobs("retry", "abcdef01")
    # Then nothing is retried and the error says how many ids match
    assert done.returncode == 1
    assert "'abcdef01' is ambiguous: 3 job ids start with it" in one_line_error(done)
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.FAILED}


def test_enqueue_with_an_out_of_range_priority_is_one_line_and_exit_2():
    done = jobs("enqueue", "tests.tasks.add", "--args", "[1, 2]", "--priority", "500")
    assert done.returncode == 2
    assert "'500' is not a priority" in one_line_error(done)
    assert not Job.objects.exists()


def test_skip_checks_works_after_the_subcommand():
    # Given `--skip-checks` written after `stats`
    done = jobs("stats", "--skip-checks")
    # Then it is accepted like `jobs --skip-checks stats`
    assert done.returncode == 0, done.stderr
    assert "live workers: 0" in done.stdout


def test_resume_of_a_queue_that_is_not_paused_is_not_found():
    done = jobs("resume", "nosuchqueue")
    assert done.returncode == 1
    assert "'nosuchqueue' is not paused" in one_line_error(done)
    assert not Queue.objects.exists()


def test_resume_of_a_paused_queue():
    Queue.objects.create(name="emails", paused=True)
    done = jobs("resume", "emails")
    assert (done.returncode, done.stdout.strip()) == (0, "resumed queue emails")
    assert not Queue.objects.get(name="emails").paused


def test_purge_off_a_terminal_without_yes_refuses_and_deletes_nothing():
    # Given old finished jobs
    for _ in range(3):
        failed(ago=timedelta(days=2))
    # When purge runs from a script (no terminal) without --yes
    done = jobs("purge", "--older-than", "0s")
    # Then it refuses in one line, exit 2, and every job is still there
    assert done.returncode == 2
    assert "refusing to delete 3 finished job(s)" in one_line_error(done)
    assert Job.objects.count() == 3


def test_purge_dry_run_lists_and_yes_deletes():
    ids = [failed(ago=timedelta(days=2)) for _ in range(2)]
    dry = jobs("purge", "--older-than", "1d", "--dry-run")
    assert dry.returncode == 0
    assert "would delete 2 finished job(s)" in dry.stdout
    assert all(job_id in dry.stdout for job_id in ids)
    assert Job.objects.count() == 2
    done = jobs("purge", "--older-than", "1d", "--yes")
    assert (done.returncode, done.stdout.strip()) == (0, "deleted 2 job(s)")
    assert not Job.objects.exists()


@pytest.mark.parametrize(("answer", "code", "left"), [("n\n", 1, 2), ("y\n", 0, 0)])
def test_purge_on_a_terminal_asks_first(answer, code, left):
    # Given old finished jobs and an operator at a terminal
    for _ in range(2):
        failed(ago=timedelta(days=2))
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode())
        # When purge runs and they answer
        done = jobs("purge", "--older-than", "1d", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    # Then it asked, and did what they said
    assert "Delete 2 finished job(s)? [y/N]" in done.stdout
    assert done.returncode == code, done.stderr
    assert Job.objects.count() == left
    assert "Traceback" not in done.stderr


def test_retry_and_cancel_select_by_status_task_and_queue():
    # Given failed jobs in two queues and a ready one
    emails = [failed("emails") for _ in range(2)]
    reports = failed("reports")
    ready = tasks.add.using(queue_name="emails").enqueue(5, 6).id
    # When failed jobs of queue emails are retried
    done = jobs("retry", "--status", "failed", "--queue", "emails", "--task", "tests.tasks.add")
    # Then exactly those are queued again
    assert (done.returncode, done.stdout.strip()) == (0, "retried 2 job(s)")
    assert [status(i) for i in emails] == [JobStatus.READY] * 2
    assert status(reports) == JobStatus.FAILED
    # And a cancel by queue, dry run first, touches only that queue's ready jobs
    dry = jobs("cancel", "--queue", "emails", "--status", "READY", "--dry-run")
    assert "would cancel 3 job(s)" in dry.stdout
    assert status(ready) == JobStatus.READY
    done = jobs("cancel", "--queue", "emails", "--status", "READY", "--yes")
    assert (done.returncode, done.stdout.strip()) == (0, "cancelled 3 job(s)")
    assert status(ready) == JobStatus.CANCELLED
    assert status(reports) == JobStatus.FAILED


def test_retry_without_ids_or_filters_is_a_bad_argument():
    done = jobs("retry")
    assert done.returncode == 2
    assert "give job ids, or select with --status/--task/--queue" in one_line_error(done)


def test_bench_where_the_project_declares_queues_without_bench_says_how_to_run_it():
    # Given a project whose QUEUES (default, emails, reports) do not list the bench's own queue
    # When an operator runs the benchmark
    done = jobs("bench", "--jobs", "10", "--repeat", "1")
    # Then one line says what to add, with the bad-arguments exit code, and no job was written
    assert done.returncode == 2, done.stderr
    line = one_line_error(done)
    assert "'bench'" in line and "QUEUES" in line
    assert not Job.objects.filter(queue_name="bench").exists()
