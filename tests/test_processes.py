"""Real ``runworker`` processes: flags, crash rescue, poison jobs, signals, timeouts."""

import signal
import socket
from pathlib import Path

import pytest
from django.db import connection

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from django_jobs.tasks_api import task_backends
from tests import tasks
from tests.conftest import wait_for

pytestmark = pytest.mark.processes

WORKER_LOST = "django_jobs.exceptions.WorkerLost"
JOB_TIMEOUT = "django_jobs.exceptions.JobTimeout"


def job_of(result) -> Job:
    return Job.objects.get(pk=result.id)


def has_status(result, *statuses):
    return lambda: job_of(result).status in statuses


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def live_worker(handle) -> Worker:
    """Wait for the handle's (single) worker process to register, and return its row."""
    return wait_for(
        lambda: Worker.objects.filter(pid__in=handle.children(), stopped_at=None).first(),
        timeout=30,
        message="the worker process to register",
    )


# --- flags --------------------------------------------------------------------------------
def test_burst_worker_exits_zero_once_nothing_is_ready(spawn_worker):
    # Given three ready jobs
    results = [tasks.add.enqueue(i, i) for i in range(3)]
    # When a burst worker runs
    worker = spawn_worker("--burst")
    # Then it runs them all and exits 0 on its own
    assert worker.wait(60) == 0, worker.output()
    assert [job_of(r).return_value for r in results] == [0, 2, 4]
    assert not Job.objects.exclude(status=JobStatus.SUCCESSFUL).exists()


def test_burst_worker_with_an_empty_queue_exits_zero(spawn_worker):
    # Given no jobs at all
    # When a burst worker starts
    worker = spawn_worker("--burst")
    # Then it exits 0 and leaves its registration marked stopped
    assert worker.wait(60) == 0, worker.output()
    assert Worker.objects.get().stopped_at is not None


def test_queue_flag_serves_only_that_queue(spawn_worker):
    # Given jobs in queue emails and queue reports
    in_emails = [tasks.add.using(queue_name="emails").enqueue(i, 1) for i in range(2)]
    in_reports = [tasks.add.using(queue_name="reports").enqueue(i, 2) for i in range(2)]
    # When a burst worker serves queue emails only
    worker = spawn_worker("--burst", "--queue", "emails")
    # Then the jobs in emails ran and the jobs in reports are still waiting
    assert worker.wait(60) == 0, worker.output()
    assert {job_of(r).status for r in in_emails} == {JobStatus.SUCCESSFUL}
    assert {job_of(r).status for r in in_reports} == {JobStatus.READY}
    assert all(job_of(r).attempts == 0 for r in in_reports)
    assert Worker.objects.get().queues == ["emails"]


def test_several_queue_flags_serve_each_of_them(spawn_worker):
    # Given jobs in queues emails, reports and default
    in_emails = [tasks.add.using(queue_name="emails").enqueue(i, 1) for i in range(2)]
    in_reports = [tasks.add.using(queue_name="reports").enqueue(i, 2) for i in range(2)]
    in_default = tasks.add.using(queue_name="default").enqueue(3, 3)
    # When a burst worker serves queues emails and reports (the several-queues claim statement)
    worker = spawn_worker("--burst", "--queue", "emails", "--queue", "reports")
    # Then it exits 0, the jobs of emails and reports ran and the job in default still waits
    assert worker.wait(60) == 0, worker.output()
    assert {job_of(r).status for r in in_emails + in_reports} == {JobStatus.SUCCESSFUL}
    assert job_of(in_default).status == JobStatus.READY
    assert "Traceback" not in worker.output()


def test_concurrency_runs_jobs_at_the_same_time(spawn_worker):
    # Given four sleeping jobs
    results = [tasks.sleep.enqueue(1.5) for _ in range(4)]
    # When one worker process with four slots runs them
    worker = spawn_worker("--burst", "--concurrency", "4")
    assert worker.wait(60) == 0, worker.output()
    # Then every job started before any of them finished: they overlapped
    jobs = [job_of(r) for r in results]
    assert {j.status for j in jobs} == {JobStatus.SUCCESSFUL}
    assert max(j.started_at for j in jobs) < min(j.finished_at for j in jobs)
    assert len({j.worker_ids[0] for j in jobs}) == 1


def test_processes_flag_registers_two_workers_that_both_run_jobs(spawn_worker, tmp_path):
    # Given a supervisor with two worker processes of one slot each
    worker = spawn_worker("--processes", "2", "--concurrency", "1")
    rows = wait_for(
        lambda: (r := list(Worker.objects.filter(stopped_at=None))) and len(r) == 2 and r,
        timeout=30,
        message="two worker rows",
    )
    # When two jobs are enqueued that can only finish if they run at the same time
    path = tmp_path / "meet.txt"
    results = [tasks.rendezvous.enqueue(str(path), i, 2) for i in range(2)]
    wait_for(lambda: all(job_of(r).is_finished for r in results), timeout=60, message="both jobs")
    # Then both succeeded, one in each process, and the rows are two distinct children
    jobs = [job_of(r) for r in results]
    assert {j.status for j in jobs} == {JobStatus.SUCCESSFUL}, [j.errors for j in jobs]
    assert {j.worker_ids[0] for j in jobs} == {r.pk for r in rows}
    assert {r.pid for r in rows} == set(worker.children())
    assert len({r.pid for r in rows}) == 2
    assert all(r.processes == 2 for r in rows)


# --- many jobs, many workers -----------------------------------------------------------------
def test_two_workers_run_each_of_2000_jobs_exactly_once(spawn_worker, tmp_path):
    # Given two separate worker commands, both up and waiting
    # (long leases: a heartbeat delayed on a loaded machine must not hand a job out twice)
    workers = [spawn_worker("--concurrency", "4", options={"lease_seconds": 60}) for _ in range(2)]
    rows = [live_worker(w) for w in workers]
    # When 2,000 jobs are bulk-inserted at once
    path = tmp_path / "record.txt"
    backend = task_backends["default"]
    count = 2000
    Job.objects.bulk_create(
        [backend.build_job(tasks.record, [str(path), i], {}) for i in range(count)],
        batch_size=500,
    )
    wait_for(
        lambda: not Job.objects.filter(status__in=[JobStatus.READY, JobStatus.RUNNING]).exists(),
        timeout=120,
        interval=0.5,
        message="2,000 jobs to finish",
    )
    # Then every job succeeded, each value was recorded exactly once, and both workers helped
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == count
    assert sorted(map(int, lines(path))) == list(range(count))
    worker_ids = {wid for ids in Job.objects.values_list("worker_ids", flat=True) for wid in ids}
    assert worker_ids == {r.pk for r in rows}
    assert not Job.objects.exclude(attempts=1).exists()
    for w in workers:
        w.signal(signal.SIGTERM)
        assert w.wait(30) == 0, w.output()


# --- crashes -----------------------------------------------------------------------------------
def test_job_of_a_killed_worker_is_rescued_and_run_by_another(spawn_worker, tmp_path):
    # Given a worker in the middle of a long job that may be tried twice
    path = tmp_path / "record.txt"
    result = tasks.record_and_sleep_on_first_attempt.using(max_attempts=2).enqueue(
        str(path), 7, 600
    )
    first = spawn_worker()
    first_row = live_worker(first)
    wait_for(lambda: lines(path) == ["7"], timeout=30, message="the job to start")
    # When the whole worker is SIGKILLed and another worker starts afterwards
    first.kill_all()
    assert job_of(result).status == JobStatus.RUNNING
    second = spawn_worker()
    second_row = live_worker(second)
    # Then once the lease runs out the job is rescued and finished by the second worker
    wait_for(has_status(result, JobStatus.SUCCESSFUL, JobStatus.FAILED), timeout=60)
    job = job_of(result)
    assert job.status == JobStatus.SUCCESSFUL, job.errors
    assert job.attempts == 2
    assert [e["exception_class_path"] for e in job.errors] == [WORKER_LOST]
    assert job.worker_ids == [first_row.pk, second_row.pk]
    assert lines(path) == ["7", "7"]
    assert second.proc.poll() is None


def test_poison_job_ends_failed_at_max_attempts_and_worker_keeps_serving(spawn_worker):
    # Given a running worker
    worker = spawn_worker()
    first_row = live_worker(worker)
    # When a job that kills its worker process (max_attempts=2) is enqueued
    poison = tasks.kill_worker.enqueue()
    wait_for(has_status(poison, JobStatus.FAILED), timeout=90, message="the poison job to fail")
    # Then it was rescued after each death and failed for good after its two attempts
    job = job_of(poison)
    assert job.attempts == 2
    assert [e["exception_class_path"] for e in job.errors] == [WORKER_LOST, WORKER_LOST]
    # And the supervisor replaced the dead processes and keeps serving other jobs
    assert worker.proc.poll() is None, worker.output()
    assert first_row.pk in job.worker_ids
    follow_up = tasks.add.enqueue(2, 3)
    wait_for(has_status(follow_up, JobStatus.SUCCESSFUL), timeout=60, message="the next job")
    assert job_of(follow_up).return_value == 5
    assert job_of(poison).attempts == 2
    assert Worker.objects.count() >= 3
    assert "starting another" in worker.output()


# --- signals -----------------------------------------------------------------------------------
def test_sigterm_lets_the_running_job_finish_and_exits_zero(spawn_worker):
    # Given a worker running a two-second job
    result = tasks.sleep.enqueue(2)
    worker = spawn_worker()
    wait_for(has_status(result, JobStatus.RUNNING), timeout=30, message="the job to start")
    # When the worker gets SIGTERM
    worker.signal(signal.SIGTERM)
    # Then the job finishes and the process exits 0
    assert worker.wait(60) == 0, worker.output()
    assert job_of(result).status == JobStatus.SUCCESSFUL
    assert job_of(result).return_value == 2


def test_sigterm_hands_back_a_job_that_outlives_the_shutdown_timeout(spawn_worker):
    # Given a worker with a one-second grace period, running a thirty-second job
    result = tasks.sleep.enqueue(30)
    worker = spawn_worker("--shutdown-timeout", "1")
    wait_for(has_status(result, JobStatus.RUNNING), timeout=30, message="the job to start")
    # When the worker gets SIGTERM
    worker.signal(signal.SIGTERM)
    # Then it exits well before the job would have ended, handing the job back to the queue
    assert worker.wait(15) == 0, worker.output()
    job = job_of(result)
    assert job.status == JobStatus.READY
    assert job.claimed_by is None
    assert job.errors == []
    assert "handed back 1 unfinished job" in worker.output()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_second_signal_stops_at_once_and_hands_the_job_back(spawn_worker, second):
    # Given a worker with the default (30 s) grace period, running a thirty-second job
    result = tasks.sleep.enqueue(30)
    worker = spawn_worker()
    wait_for(has_status(result, JobStatus.RUNNING), timeout=30, message="the job to start")
    # When it gets SIGTERM, starts draining, then gets a second signal
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "finishing running jobs" in worker.output(), timeout=15)
    worker.signal(second)
    # Then it stops without waiting out the grace period, and the job is back in the queue
    assert worker.wait(15) == 0, worker.output()
    assert "stopping now" in worker.output()
    job = job_of(result)
    assert job.status == JobStatus.READY
    assert job.errors == []


# --- timeouts ----------------------------------------------------------------------------------
def test_job_stuck_in_c_past_its_timeout_fails_and_the_process_is_replaced(spawn_worker):
    # Given a worker
    worker = spawn_worker()
    first_row = live_worker(worker)
    # When a job blocks in C code past its one-second timeout
    stuck = tasks.blocks_in_c.enqueue(30)
    wait_for(has_status(stuck, JobStatus.FAILED), timeout=60, message="the stuck job to fail")
    # Then it failed with JobTimeout and a new worker process took the old one's place
    job = job_of(stuck)
    assert [e["exception_class_path"] for e in job.errors] == [JOB_TIMEOUT]
    replacement = wait_for(
        lambda: Worker.objects.exclude(pk=first_row.pk).filter(stopped_at=None).first(),
        timeout=30,
        message="a replacement worker process",
    )
    assert replacement.pid != first_row.pid
    first_row.refresh_from_db()
    assert first_row.stopped_at is not None
    # And the replacement runs the next job
    follow_up = tasks.add.enqueue(20, 22)
    wait_for(has_status(follow_up, JobStatus.SUCCESSFUL), timeout=60, message="the next job")
    assert job_of(follow_up).worker_ids == [replacement.pk]
    assert worker.proc.poll() is None


# --- registration ------------------------------------------------------------------------------
def test_worker_registers_heartbeats_and_marks_itself_stopped(spawn_worker):
    # Given a worker serving two queues with three slots
    worker = spawn_worker("--queue", "emails", "--queue", "reports", "--concurrency", "3")
    row = live_worker(worker)
    # Then its row says who and where it is
    assert row.hostname == socket.gethostname()
    assert row.pid == worker.children()[0]
    assert row.queues == ["emails", "reports"]
    assert row.concurrency == 3
    assert row.processes == 1
    assert row.stopped_at is None
    # And its heartbeat advances while it runs
    wait_for(
        lambda: Worker.objects.get(pk=row.pk).last_heartbeat_at > row.last_heartbeat_at,
        timeout=30,
        message="a heartbeat",
    )
    # When it is stopped cleanly
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()
    # Then its row is marked stopped
    row.refresh_from_db()
    assert row.stopped_at is not None


# --- broken jobs ---------------------------------------------------------------------------------
def test_broken_jobs_fail_alone_and_the_worker_keeps_running(spawn_worker):
    # Given a raising job, a row naming no declared task, and a good job
    raising = tasks.raises_key_error.enqueue()
    unknown = task_backends["default"].build_job(tasks.add, [1, 2], {})
    unknown.task_path = "tests.tasks.no_such_task"
    unknown.save(force_insert=True)
    good = tasks.add.enqueue(1, 2)
    # When a worker runs them
    worker = spawn_worker()
    row = live_worker(worker)
    wait_for(
        lambda: not Job.objects.filter(status__in=[JobStatus.READY, JobStatus.RUNNING]).exists(),
        timeout=60,
        message="all three jobs to finish",
    )
    # Then the good job succeeded and the broken ones failed with their own errors
    assert job_of(good).status == JobStatus.SUCCESSFUL
    assert job_of(good).return_value == 3
    assert job_of(raising).status == JobStatus.FAILED
    assert job_of(raising).errors[0]["exception_class_path"] == "builtins.KeyError"
    unknown.refresh_from_db()
    assert unknown.status == JobStatus.FAILED
    assert unknown.errors[0]["exception_class_path"] == "django_jobs.exceptions.UnknownTask"
    # And the same worker process is still serving
    after = tasks.add.enqueue(3, 4)
    wait_for(has_status(after, JobStatus.SUCCESSFUL), timeout=60, message="a later job")
    assert job_of(after).worker_ids == [row.pk]
    assert worker.proc.poll() is None


# --- database connections lost -------------------------------------------------------------------
def kill_other_connections() -> None:
    """Terminate every other session on the test database (the worker's), as a failover would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return
        cursor.execute(
            "SELECT id FROM information_schema.processlist"
            " WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        for (session,) in cursor.fetchall():
            cursor.execute(f"KILL {int(session)}")


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no connections to kill")
def test_worker_reconnects_after_its_database_connections_are_killed(spawn_worker):
    # Given a worker that, on PostgreSQL, only wakes early on NOTIFY (its poll interval is
    # longer than every deadline below), with a lease that outlives the outage
    poll = 60 if connection.vendor == "postgresql" else 0.2
    worker = spawn_worker(options={"poll_interval": poll, "lease_seconds": 60})
    row = live_worker(worker)
    before = tasks.add.enqueue(1, 1)
    wait_for(has_status(before, JobStatus.SUCCESSFUL), timeout=30, message="a first job")
    # When all its database sessions (claim, heartbeat, LISTEN) are killed and a job follows
    kill_other_connections()
    during = tasks.add.enqueue(2, 2)
    # Then the same worker process reconnects and runs it, and the next one too
    wait_for(has_status(during, JobStatus.SUCCESSFUL), timeout=30, message="the job after")
    after = tasks.add.enqueue(3, 3)
    wait_for(has_status(after, JobStatus.SUCCESSFUL), timeout=30, message="a later job")
    assert job_of(during).worker_ids == job_of(after).worker_ids == [row.pk]
    assert worker.children() == [row.pid]
    assert Worker.objects.count() == 1
