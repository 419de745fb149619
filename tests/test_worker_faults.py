"""A job on a live worker is never handed out twice, and a claimed job is never dropped: real
``runworker`` processes under graceful stops, immediate retries, dropped connections and failed
claims."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import DatabaseError, connection, transaction

import django_jobs
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Gate, Worker
from tests import tasks
from tests.conftest import ROOT, process_env, wait_for, worker_database_url
from tests.test_processes import job_of, lines, live_worker

pytestmark = pytest.mark.processes

with_sessions = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite has no sessions to terminate"
)


def finished(*results) -> bool:
    return all(job_of(r).is_finished for r in results)


def error_classes(result) -> list[str]:
    return [e["exception_class_path"] for e in job_of(result).errors]


def terminate_sessions(spare: set[int]) -> int:
    """Terminate every session on the test database but ``spare`` (as a proxy recycling
    connections, or a failover, would); return how many."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> ALL(%s)"
                " AND backend_type = 'client backend'",
                [sorted(spare)],
            )
            return cursor.fetchone()[0]
        cursor.execute("SELECT id FROM information_schema.processlist WHERE db = DATABASE()")
        sessions = [session for (session,) in cursor.fetchall() if session not in spare]
        for session in sessions:
            with contextlib.suppress(DatabaseError):  # it may have ended meanwhile
                cursor.execute(f"KILL {int(session)}")
        return len(sessions)


def session_id(cursor) -> int:
    pg = connection.vendor == "postgresql"
    cursor.execute("SELECT pg_backend_pid()" if pg else "SELECT CONNECTION_ID()")
    return cursor.fetchone()[0]


@contextlib.contextmanager
def sessions_terminated_every(seconds: float):
    """Terminate the workers' database sessions every ``seconds`` while the block runs."""
    with connection.cursor() as cursor:
        spare = {session_id(cursor)}
    done = threading.Event()
    rounds = []

    def loop():
        try:
            with connection.cursor() as cursor:
                spare.add(session_id(cursor))
            while not done.wait(seconds):
                rounds.append(terminate_sessions(spare))
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield rounds
    finally:
        done.set()
        thread.join(10)


def my_session() -> int:
    with connection.cursor() as cursor:
        return session_id(cursor)


# --- case 1: graceful shutdown of jobs longer than the lease ----------------------------------
def test_jobs_longer_than_the_lease_keep_their_leases_while_the_worker_drains(
    spawn_worker, tmp_path
):
    # Given a worker running two jobs of 8 s, far longer than the 3 s lease
    paths = [tmp_path / f"job-{n}.txt" for n in range(2)]
    results = [tasks.record_attempt_then_sleep.enqueue(str(p), 8) for p in paths]
    first = spawn_worker("--concurrency", "2", "--shutdown-timeout", "30")
    wait_for(lambda: all(lines(p) == ["1"] for p in paths), timeout=30, message="both jobs")
    # And a second worker, free, rescuing expired leases at every heartbeat
    second = spawn_worker("--concurrency", "2")
    live_worker(second)
    # When the first worker gets SIGTERM and lets its jobs finish (30 s grace period)
    first.signal(signal.SIGTERM)
    # Then it keeps their leases alive until they end: it exits 0, both outcomes are written,
    # and no job was rescued or run a second time
    assert first.wait(60) == 0, first.output()
    for path, result in zip(paths, results, strict=True):
        job = job_of(result)
        assert job.status == JobStatus.SUCCESSFUL, job.errors
        assert (job.attempts, job.errors, lines(path)) == (1, [], ["1"])
    assert "lease lost" not in first.output()
    assert "rescued" not in second.output()


def test_a_draining_worker_still_passes_cancellation_on_to_its_jobs(spawn_worker, tmp_path):
    # Given a worker draining (20 s grace period) a job that checks for cancellation
    marker = tmp_path / "started"
    result = tasks.stops_when_cancelled.enqueue(str(marker))
    worker = spawn_worker("--shutdown-timeout", "20")
    wait_for(marker.exists, timeout=30, message="the job to start")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "finishing running jobs" in worker.output(), timeout=15)
    # When the job is cancelled
    assert django_jobs.cancel(result)
    # Then the job hears of it from the draining worker's heartbeat and stops by itself (its
    # own traceback), rather than being cancelled when the grace period ends
    assert worker.wait(60) == 0, worker.output()
    job = job_of(result)
    assert job.status == JobStatus.CANCELLED
    assert "raise_if_cancelled" in job.errors[-1]["traceback"], job.errors


# --- case 2: an immediate retry re-claimed by the same process -------------------------------
def test_an_immediate_retry_reclaimed_by_the_same_process_keeps_its_lease(spawn_worker, tmp_path):
    # Given, on one worker process with three slots, a job whose first attempt fails after 1 s
    # and is retried at once (its second attempt takes 8 s, longer than the 3 s lease), between
    # two failures whose writing each holds the outcome writer for 3 s: the retry is committed
    # (and claimed again by the same process) 3 s before the writer confirms its batch
    path = tmp_path / "attempts.txt"
    holder = tasks.fails_then_holds_the_writer.enqueue(0, 3)
    retried = tasks.retries_at_once_then_sleeps.enqueue(str(path), 1, 8)
    follower = tasks.fails_then_holds_the_writer.enqueue(2, 3)
    # When the worker runs them
    worker = spawn_worker("--concurrency", "3")
    wait_for(lambda: finished(holder, retried, follower), timeout=90, message="the three jobs")
    # Then the second attempt kept its lease although the late confirmation of the first came
    # while it ran: it ran once, was never rescued, and no third attempt ran
    assert lines(path) == ["1", "2"], worker.output()
    assert job_of(retried).status == JobStatus.SUCCESSFUL
    assert job_of(retried).attempts == 2
    assert error_classes(retried) == ["builtins.RuntimeError"]
    assert "rescued" not in worker.output()


def test_sigterm_waits_for_an_immediate_retry_reclaimed_by_the_same_process(spawn_worker, tmp_path):
    # Given the same late confirmation as above, the second attempt running
    path = tmp_path / "attempts.txt"
    holder = tasks.fails_then_holds_the_writer.enqueue(0, 3)
    retried = tasks.retries_at_once_then_sleeps.enqueue(str(path), 1, 5)
    follower = tasks.fails_then_holds_the_writer.enqueue(2, 3)
    worker = spawn_worker("--concurrency", "3")
    wait_for(lambda: lines(path) == ["1", "2"], timeout=60, message="the second attempt")
    wait_for(lambda: finished(holder, follower), timeout=30, message="the confirmation")
    # When the worker gets SIGTERM
    worker.signal(signal.SIGTERM)
    # Then it waits for the second attempt and writes its outcome before it exits
    assert worker.wait(60) == 0, worker.output()
    assert job_of(retried).status == JobStatus.SUCCESSFUL, job_of(retried).errors
    assert lines(path) == ["1", "2"]


# --- case 3: the heartbeat's connection dropped ---------------------------------------------
@with_sessions
def test_worker_rides_out_its_sessions_being_terminated_every_second(spawn_worker, tmp_path):
    # Given a worker that heartbeats every 1.5 s for leases of 4.5 s
    worker = spawn_worker(
        "--concurrency", "2", options={"heartbeat_interval": 1.5, "lease_seconds": 4.5}
    )
    row = live_worker(worker)
    path = tmp_path / "ran.txt"
    results = [tasks.record_then_sleep.enqueue(str(path), n, 0.4) for n in range(40)]
    # When every one of its database sessions is terminated every second while it runs them
    with sessions_terminated_every(1.0) as rounds:
        wait_for(lambda: finished(*results), timeout=120, interval=0.5, message="40 jobs")
    # Then the same process reconnected each time: it never gave its leases up, and every job
    # ran exactly once
    assert sum(rounds) >= 5, rounds
    assert "heartbeats failing" not in worker.output(), worker.output()
    assert "code=70" not in worker.output(), worker.output()
    failed = [job_of(r).errors for r in results if job_of(r).status != JobStatus.SUCCESSFUL]
    assert failed == [], worker.output()
    assert sorted(map(int, lines(path))) == list(range(40))
    assert worker.children() == [row.pid]


def test_a_forced_stop_writes_the_outcomes_already_finished(spawn_worker, tmp_path):
    # Given a worker whose outcome writer is held for 3 s (writing a first job's failure),
    # while a second job finishes and its outcome waits to be written
    worker = spawn_worker(
        "--concurrency", "2", options={"heartbeat_interval": 3, "lease_seconds": 6}
    )
    marker = tmp_path / "go"
    holder = tasks.fails_then_holds_the_writer.enqueue(0, 3)
    done = tasks.waits_for_file.enqueue(str(marker))
    wait_for(lambda: job_of(holder).status == JobStatus.FAILED, timeout=30, message="the hold")
    marker.touch()
    time.sleep(0.5)  # the second job returns within ~20 ms of the file appearing
    # When the worker is stopped at once (a second signal)
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "finishing running jobs" in worker.output(), timeout=15)
    worker.signal(signal.SIGTERM)
    # Then before exiting it writes the finished job's outcome instead of abandoning it
    assert worker.wait(30) == 0, worker.output()
    assert "stopping now" in worker.output()
    assert job_of(done).status == JobStatus.SUCCESSFUL, worker.output()


# --- case 4: the query after the claim fails --------------------------------------------------
@pytest.fixture
def lock_timeout_role(transactional_db):
    """A PostgreSQL role like the worker's whose statements give up waiting for a lock after
    200 ms: a worker on it fails its gated claim while a test holds the gate's lock."""
    if connection.vendor != "postgresql":
        pytest.skip("needs a PostgreSQL role with its own lock_timeout")
    role = f"djjobs_locktimeout_{connection.settings_dict['NAME']}"[:63]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone():
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')
        cursor.execute(f'CREATE ROLE "{role}" LOGIN')
        cursor.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"')
        cursor.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
        cursor.execute(f"ALTER ROLE \"{role}\" SET lock_timeout = '200ms'")
    url = urlsplit(worker_database_url())
    yield urlunsplit(url._replace(netloc=f"{role}@{url.hostname}:{url.port or 5432}"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
        )
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize("alias", ["default", pytest.param("redis", marks=pytest.mark.redis)])
def test_jobs_claimed_before_a_failing_gated_claim_still_run(
    request, spawn_worker, lock_timeout_role, tmp_path, alias
):
    backend_args = ()
    if alias == "redis":
        request.getfixturevalue("redis_backend")
        backend_args = ("--backend", "redis")
    # Given a gated job waiting, whose gate's lock the test holds (the worker's gated claim,
    # run after its ordinary claim, then fails with a lock timeout), and two ordinary jobs
    path = tmp_path / "ran.txt"
    gated = tasks.one_at_a_time.using(backend=alias).enqueue(str(tmp_path))
    ordinary = [tasks.record.using(backend=alias).enqueue(str(path), n) for n in range(2)]
    key = job_of(gated).limit_key
    Gate.objects.get_or_create(key=key)
    with transaction.atomic():
        Gate.objects.select_for_update().get(pk=key)
        # When a worker with four slots claims the two ordinary jobs, then fails the gated claim
        worker = spawn_worker(*backend_args, "--concurrency", "4", database_url=lock_timeout_role)
        wait_for(lambda: finished(*ordinary), timeout=30, message=f"the ordinary jobs on {alias}")
        # Then the two claimed jobs ran once each, and were not rescued as lost
        assert {job_of(r).status for r in ordinary} == {JobStatus.SUCCESSFUL}, [
            job_of(r).errors for r in ordinary
        ]
        assert sorted(lines(path)) == ["0", "1"]
        assert all(job_of(r).attempts == 1 for r in ordinary)
        assert "gated claim failed" in worker.output()
        assert job_of(gated).status == JobStatus.READY
    # And once the lock is free the gated job runs too
    wait_for(lambda: finished(gated), timeout=30, message="the gated job")
    assert job_of(gated).status == JobStatus.SUCCESSFUL


# --- case 7: the last write, and a signal during fork -------------------------------------------
@with_sessions
def test_worker_marks_itself_stopped_although_its_connections_were_dropped(spawn_worker):
    # Given a worker draining a 4 s job after SIGTERM
    result = tasks.sleep.enqueue(4)
    worker = spawn_worker()
    row = live_worker(worker)
    wait_for(lambda: job_of(result).status == JobStatus.RUNNING, timeout=30, message="the job")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "finishing running jobs" in worker.output(), timeout=15)
    # When all its database sessions are terminated before the job ends
    assert terminate_sessions({my_session()}) >= 1
    # Then it reconnects to write the outcome and to mark its row stopped
    assert worker.wait(60) == 0, worker.output()
    assert job_of(result).status == JobStatus.SUCCESSFUL
    assert "could not mark worker stopped" not in worker.output()
    assert Worker.objects.get(pk=row.pk).stopped_at is not None


#: A supervisor whose ``os.fork`` is followed, in the parent, by a SIGTERM to itself: the signal
#: lands before the supervisor has recorded the child it just forked.
FORK_RACE = textwrap.dedent(
    """
    import os, signal, sys, time
    import django
    django.setup()
    from django_jobs.worker import supervisor

    fork = os.fork

    def fork_then_sigterm():
        pid = fork()
        if pid:
            os.kill(os.getpid(), signal.SIGTERM)
        return pid

    def child(parent):
        time.sleep(60)
        return 0

    supervisor.os.fork = fork_then_sigterm
    sys.exit(supervisor.Supervisor(1, child).run())
    """
)


def test_sigterm_between_fork_and_recording_the_child_reaches_the_child(db):
    # Given a supervisor that gets SIGTERM right after forking its worker process
    env = {**process_env(), "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    proc = subprocess.Popen(
        [sys.executable, "-c", FORK_RACE], cwd=ROOT, env=env, start_new_session=True
    )
    # When it handles the signal
    # Then the child is told too, and both exit instead of the child running on
    try:
        assert proc.wait(20) == 0
    finally:
        for pid in children_of(proc.pid) + [proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []
