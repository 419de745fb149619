"""``manage.py jobs`` for looking: list, show, stats, health (probes); progress bars on a
terminal only; ``bench`` refusing a queue other workers serve, and its table."""

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from django_jobs.testing import run_jobs
from tests import tasks
from tests.conftest import QUEUES, ROOT, copy_job, process_env
from tests.test_jobs_cli import failed, jobs, one_line_error

pytestmark = [pytest.mark.django_db(transaction=True)]


#: Options whose lease (the default --max-age of health and bench) outlasts a slow start.
SLOW_LEASE = {"lease_seconds": 60, "heartbeat_interval": 10}


def run(*args) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def worker(queues=(), heartbeat_ago=timedelta(0), hostname="worker-host", stopped=False):
    now = timezone.now()
    return Worker.objects.create(
        id=uuid.uuid4().hex,
        hostname=hostname,
        pid=4242,
        queues=list(queues),
        started_at=now - heartbeat_ago,
        last_heartbeat_at=now - heartbeat_ago,
        stopped_at=now if stopped else None,
    )


def read_terminal(controller: int) -> str:
    """What a process wrote to the terminal whose other end is ``controller``."""
    chunks = []
    while select.select([controller], [], [], 0.5)[0]:
        try:
            data = os.read(controller, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def on_a_terminal(*args: str, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``manage.py jobs <args>`` with stderr on a terminal (outside CI unless ``env`` says
    so); also return what it drew."""
    environment = {**process_env(), "TERM": "xterm", **env}
    if "CI" not in env:
        environment.pop("CI", None)
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "jobs", *args],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=120,
        )
        return done, read_terminal(controller)
    finally:
        os.close(controller)
        os.close(terminal)


# --- list -------------------------------------------------------------------------------------
def test_list_shows_the_newest_jobs_first_in_a_compact_table():
    # Given three jobs enqueued one after the other
    ids = [tasks.add.enqueue(i, i).id for i in range(3)]
    Job.objects.filter(pk=ids[0]).update(enqueued_at=timezone.now() - timedelta(hours=2))
    # When they are listed, two at most
    lines = run("list", "--limit", "2").splitlines()
    # Then a header, and the two newest, each by its short id, with attempts and age
    assert lines[0].split() == ["ID", "STATUS", "TASK", "QUEUE", "ATTEMPTS", "ENQUEUED", "AGE"]
    assert [line[:8] for line in lines[1:]] == [ids[2][:8], ids[1][:8]]
    assert lines[1].split()[1:5] == ["READY", "tests.tasks.add", "default", "0/1"]


def test_list_filters_by_status_task_and_queue():
    # Given failed jobs in two queues and a ready one
    emails = failed("emails")
    failed("reports")
    tasks.add.using(queue_name="emails").enqueue(1, 1)
    # When failed jobs of queue emails are listed
    out = run("list", "--status", "failed", "--queue", "emails", "--task", "tests.tasks.add")
    # Then only that job is there
    [_, row] = out.splitlines()
    assert row.startswith(emails[:8]) and " FAILED " in row


def test_list_with_nothing_matching_and_bad_limit_are_one_line_errors():
    tasks.add.enqueue(1, 1)
    nothing = jobs("list", "--status", "FAILED")
    assert nothing.returncode == 1
    assert one_line_error(nothing) == "CommandError: no job matches."
    bad = jobs("list", "--limit", "0")
    assert bad.returncode == 2
    assert "'0' is not a whole number >= 1" in one_line_error(bad)


# --- show -------------------------------------------------------------------------------------
def test_show_gives_the_fields_each_attempt_and_the_last_traceback():
    # Given a job that failed its three attempts
    job_id = tasks.always_fails.enqueue("boom").id
    run_jobs()
    # When it is shown by its short id
    done = jobs("show", job_id[:8])
    # Then its fields, each attempt with worker and error class, and the last traceback
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"id            {job_id}" in out
    assert "status        FAILED" in out and "attempts      3 of 3" in out
    assert 'args          ["boom"]' in out
    for number in (1, 2, 3):
        assert f"  {number}  django-jobs-testing  builtins.ValueError" in out
    assert "Last traceback (attempt 3)" in out and "ValueError: boom" in out


def test_show_of_a_successful_job_gives_its_return_value():
    job_id = tasks.add.enqueue(2, 3).id
    run_jobs()
    out = run("show", job_id)
    assert "return value  5" in out
    assert "  1  django-jobs-testing  (succeeded)" in out
    assert "Last traceback" not in out


def test_show_of_an_unknown_or_malformed_id_is_one_line():
    missing = jobs("show", uuid.uuid4().hex[:12])
    assert missing.returncode == 1
    assert "no job id starts with" in one_line_error(missing)
    malformed = jobs("show", "xyz")
    assert malformed.returncode == 2
    assert "is not a job id" in one_line_error(malformed)


# --- stats ------------------------------------------------------------------------------------
def test_stats_is_a_table_by_default_and_json_for_scripts():
    # Given two ready jobs in default and a failed one in emails
    tasks.add.enqueue(1, 2)
    tasks.add.enqueue(3, 4)
    failed("emails")
    # When stats are printed
    lines = run("stats").splitlines()
    # Then a row per queue, a total row, and the live workers
    assert lines[0].split() == ["QUEUE", *JobStatus.values]
    assert lines[1].split() == ["default", "2", "0", "0", "0", "0", "0"]
    assert lines[2].split() == ["emails", "0", "0", "0", "1", "0", "0"]
    assert lines[3].split() == ["(all)", "2", "0", "0", "1", "0", "0"]
    assert lines[-1] == "live workers: 0"
    # And --json gives the same counts as JSON
    counts = json.loads(run("stats", "--json"))
    assert counts["queues"]["default"]["READY"] == 2 and counts["live_workers"] == 0


# --- health -----------------------------------------------------------------------------------
def test_health_is_ok_when_the_database_answers():
    done = jobs("health")
    assert (done.returncode, done.stdout.strip()) == (0, "ok: database 'default' answers")


def test_health_fails_in_one_line_when_the_database_does_not_answer():
    # Given a database URL where nothing listens
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = process_env(database_url=f"postgres://postgres@127.0.0.1:{port}/nothing")
    # When the probe runs (system checks included)
    done = jobs("health", env=env)
    # Then it exits 1 saying why, in one line
    assert done.returncode == 1
    assert "unhealthy: database 'default' does not answer" in one_line_error(done)
    # And the other looking subcommands say so in one line too
    for args in (["stats"], ["list"], ["show", "abcd"]):
        done = jobs(*args, env=env)
        assert done.returncode == 1
        assert "database 'default' does not answer" in one_line_error(done)


@pytest.mark.parametrize(
    ("given", "args", "code"),
    [
        ({}, ["--workers", "1"], 1),
        ({"heartbeat_ago": timedelta(seconds=1)}, ["--workers", "1"], 0),
        ({"heartbeat_ago": timedelta(minutes=5)}, ["--workers", "1"], 1),
        ({"heartbeat_ago": timedelta(minutes=5)}, ["--workers", "1", "--max-age", "10m"], 0),
        ({"stopped": True}, ["--workers", "1"], 1),
        ({"queues": ["emails"]}, ["--workers", "1", "--queue", "emails"], 0),
        ({"queues": ["emails"]}, ["--workers", "1", "--queue", "reports"], 1),
        ({"queues": []}, ["--workers", "1", "--queue", "reports"], 0),
        ({"queues": []}, ["--workers", "2"], 1),
        ({"hostname": "elsewhere"}, ["--workers", "1", "--this-host"], 1),
        ({"hostname": socket.gethostname()}, ["--workers", "1", "--this-host"], 0),
        ({"queues": ["emails"]}, ["--queue", "reports"], 1),  # --queue implies --workers 1
        ({"hostname": socket.gethostname()}, ["--this-host"], 0),
    ],
)
def test_health_counts_the_workers_that_heartbeated_recently(given, args, code):
    # Given one worker row (none for the first case)
    if given:
        worker(**given)
    # When the probe asks for live workers (a lease of a minute: "recent" must not depend on
    # how long a loaded machine takes to start the command)
    done = jobs("health", *args, env=process_env(SLOW_LEASE))
    # Then it passes or fails with one line saying how many it found
    assert done.returncode == code, done.stdout + done.stderr
    if code:
        assert "required" in one_line_error(done)
    else:
        assert "heartbeated within" in done.stdout


# --- progress bars ----------------------------------------------------------------------------
def test_a_bulk_retry_draws_a_progress_bar_on_a_terminal_only():
    # Given more failed jobs than one batch
    copy_job(tasks.add.enqueue(1, 1).id, 1499)
    Job.objects.update(status=JobStatus.FAILED, finished_at=timezone.now())
    # When they are retried from a script (stderr a pipe)
    piped = jobs("retry", "--status", "FAILED")
    # Then no bar, just the count
    assert (piped.returncode, piped.stdout.strip(), piped.stderr) == (0, "retried 1500 job(s)", "")
    # When they are retried again on a CI job's pseudo-terminal, then no bar either
    Job.objects.update(status=JobStatus.FAILED)
    done, drawn = on_a_terminal("retry", "--status", "FAILED", CI="true")
    assert (done.returncode, done.stdout.strip(), drawn) == (0, "retried 1500 job(s)", "")
    # When they are retried again on a terminal
    Job.objects.update(status=JobStatus.FAILED)
    done, drawn = on_a_terminal("retry", "--status", "FAILED")
    # Then the bar was drawn as the batches went, and every job was retried
    assert done.returncode == 0 and done.stdout.strip() == "retried 1500 job(s)"
    assert "retrying [" in drawn and "1000/1500" in drawn and "1500/1500" in drawn
    assert Job.objects.filter(status=JobStatus.READY).count() == 1500
    # And a purge of them all on a terminal draws its bar too
    Job.objects.update(status=JobStatus.FAILED, finished_at=timezone.now() - timedelta(days=2))
    done, drawn = on_a_terminal("purge", "--older-than", "1d", "--yes")
    assert done.returncode == 0 and done.stdout.strip() == "deleted 1500 job(s)"
    assert "deleting [" in drawn and "1500/1500" in drawn
    assert not Job.objects.exists()


# --- bench ------------------------------------------------------------------------------------
BENCH_QUEUES = json.dumps([*QUEUES, "bench"])
TINY_BENCH = ["--jobs", "20", "--enqueue-jobs", "20", "--repeat", "1", "--latency-samples", "0"]
TINY_BENCH += ["--processes", "1", "--concurrency", "2"]


def test_bench_refuses_while_a_live_worker_serves_every_queue():
    # Given a live worker serving every queue (no --queue), so the bench's queue too
    worker(queues=[])
    # When the benchmark is started
    done = jobs("bench", *TINY_BENCH, env=process_env(SLOW_LEASE, JOBS_QUEUES=BENCH_QUEUES))
    # Then it refuses in one line, and wrote no job
    assert done.returncode == 1
    line = one_line_error(done)
    assert "refusing to run the benchmark: 1 live worker(s)" in line
    assert "worker-host:4242" in line
    assert not Job.objects.filter(queue_name="bench").exists()


@pytest.mark.processes
def test_bench_runs_beside_workers_of_other_queues_and_prints_a_table():
    # Given workers that do not serve the bench's queue: another queue's, a stale one, a stopped
    worker(queues=["emails"])
    worker(queues=[], heartbeat_ago=timedelta(hours=1))
    worker(queues=["bench"], stopped=True)
    env = process_env(JOBS_QUEUES=BENCH_QUEUES)
    # When a tiny benchmark runs
    done = jobs("bench", *TINY_BENCH, env=env)
    # Then it prints its progress, then what it ran on, then its figures as a table
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("run 1: enqueue")
    start = lines.index(next(line for line in lines if line.startswith("MEASURE")))
    ran_on, settings = lines[start - 3 : start - 1]
    assert re.match(r"backend 'default', (database|redis) broker", ran_on), ran_on
    assert "relaxed_commits=" in ran_on
    assert "jobs=20 " in settings and "processes=1 " in settings
    table = dict(re.split(r"\s{2,}", row)[:2] for row in lines[start + 1 :])  # name: value
    assert list(table)[:6] == [
        "enqueue",
        "bulk enqueue",
        "drain (row span)",
        "drain (seen from outside)",
        "drain incl. worker start",
        "not successful",
    ]
    assert table["not successful"] == "0"
    # And --json prints them for scripts: the three drain measures, sane beside each other,
    # here over a history of finished rows (in a queue the project need not declare)
    as_json = jobs("bench", *TINY_BENCH, "--history", "30", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["not_successful"] == 0
    assert summary["config"]["history"] == 30
    assert summary["setup"]["broker"] in ("database", "redis")
    assert not Job.objects.filter(queue_name__startswith="bench").exists()  # cleaned up
    for key in ("drain", "drain_outside", "drain_wall"):
        assert summary[f"{key}_per_s"] > 0 and len(summary[f"{key}_runs"]) == 1
    # (the worker's start-up counts only in the wall rate, so it is never the higher one)
    assert summary["drain_wall_per_s"] <= summary["drain_outside_per_s"]


@pytest.mark.processes
def test_bench_drains_after_its_enqueue_phase_left_thousands_of_deleted_jobs():
    # Given a benchmark whose one-by-one phase enqueues (then deletes) 1,500 jobs: more than
    # the sweep at a worker's start prunes plus what a one-slot worker pops in its rounds (on
    # the Redis broker their ids stayed ahead of the drain's jobs, the burst worker stopped at
    # once, and the bench died with a TypeError)
    env = process_env(JOBS_QUEUES=BENCH_QUEUES)
    options = [*TINY_BENCH, "--enqueue-jobs", "1500", "--concurrency", "1", "--json"]
    # When it runs
    done = jobs("bench", *options, env=env)
    # Then it measured a drain of every job
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["not_successful"] == 0 and summary["drain_per_s"] > 0


@pytest.mark.processes
def test_bench_whose_workers_run_none_of_its_jobs_stops_with_one_line():
    # Given the bench's queue paused by an operator: its burst workers claim nothing and exit
    env = process_env(JOBS_QUEUES=BENCH_QUEUES)
    assert jobs("pause", "bench", env=env).returncode == 0
    # When the benchmark runs
    done = jobs("bench", *TINY_BENCH, env=env)
    # Then it stops with one line saying what happened, not a traceback
    assert done.returncode == 1
    line = one_line_error(done)
    assert "jobs bench: the workers finished none of the 20 jobs and exited with 0" in line
