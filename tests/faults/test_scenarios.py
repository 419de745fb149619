"""The fault suite's scenarios: real workers and beats attacked while they drain jobs.

Each scenario enqueues jobs of ``tests.faults.tasks`` (every execution writes its own record),
injects its fault at intervals until the jobs are finished, then counts: **lost** (not ended
as expected), **twice while alive** (asserted 0) and **twice after expiry** (reported).
``FAULTS_SCALE=long`` runs the long versions (``scripts/faults.sh`` prints their table).
"""

import random
import signal
import time
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Schedule, ScheduleFire
from tests.conftest import wait_for
from tests.faults import ledger, tasks
from tests.faults.harness import Figures, count, drain, record, scale, skewed_env
from tests.faults.servers import PrivateRedis

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

SUCCESSFUL, FAILED = JobStatus.SUCCESSFUL, JobStatus.FAILED


@pytest.fixture(params=["database", "redis"])
def broker(request, settings, fleet):
    """Point this process and ``fleet``'s workers at one broker (Redis: a private server, so
    the suite needs no REDIS_URL and may flush or kill it)."""
    options = {"broker": request.param}
    server = PrivateRedis() if request.param == "redis" else None
    if server is not None:
        options["redis_url"] = server.url
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": ["default", "emails", "reports"],
            "OPTIONS": {**fleet.options, **options},
        }
    }
    fleet.options.update(options)
    yield server
    fleet.close()
    if server is not None:
        server.close()


def enqueue(task, n: int, *args, attempts: int | None = None):
    """``attempts``: enough for the kills a job may meet (a job killed on its last attempt
    ends FAILED/WorkerLost: at-least-once within max_attempts)."""
    task = task.using(max_attempts=attempts) if attempts else task
    return [task.enqueue(*args).id for _ in range(n)]


def workers(fleet, n: int = 2, concurrency: int = 4, *extra: str):
    return [fleet.spawn("runworker", "--concurrency", str(concurrency), *extra) for _ in range(n)]


def assert_clean(figures: Figures, result, fleet) -> None:
    assert result.lost == [], fleet.output()
    assert result.twice_while_alive == [], fleet.output()


# --- crashes ----------------------------------------------------------------------------------
def test_sigkill_loop_over_a_drain(fleet, broker, tmp_path):
    # Given two workers draining short jobs
    started, path = time.monotonic(), tmp_path / "ledger.jsonl"
    ids = enqueue(tasks.counted, scale(300, 5000), str(path), 0.02, attempts=10)
    running = workers(fleet)
    kills = 0

    def kill_one():
        nonlocal kills
        victim = running.pop(random.randrange(len(running)))
        kills += 1 if fleet.kill(victim) else 0
        running.append(fleet.spawn("runworker", "--concurrency", "4"))

    # When one of them is SIGKILLed every ~2 s (and replaced) until the jobs are done
    left = drain(ids, timeout=scale(120, 900), every=2.0, inject=kill_one)
    # Then no job is lost and none ran twice while its worker lived
    assert left == [], fleet.output()
    name = f"SIGKILL loop ({connection.vendor}, {broker and 'redis' or 'database'} broker)"
    figures, result = count(name, path, dict.fromkeys(ids, SUCCESSFUL), fleet, kills, started)
    assert_clean(figures, result, fleet)


def test_redis_flushdb_mid_drain(fleet, settings, tmp_path):
    # Given workers on the Redis broker (a private redis-server) draining jobs
    server = PrivateRedis()
    try:
        options = {"broker": "redis", "redis_url": server.url}
        settings.TASKS = {
            "default": {
                "BACKEND": "django_jobs.backend.JobsBackend",
                "QUEUES": ["default", "emails", "reports"],
                "OPTIONS": {**fleet.options, **options},
            }
        }
        fleet.options.update(options)
        started, path = time.monotonic(), tmp_path / "ledger.jsonl"
        ids = enqueue(tasks.counted, scale(300, 5000), str(path), 0.02, attempts=10)
        workers(fleet)
        client, flushes = redis.Redis.from_url(server.url), 0

        def flush():
            nonlocal flushes
            client.flushdb()  # the private server's database: nobody else's
            flushes += 1

        # When Redis loses everything every ~3 s
        left = drain(ids, timeout=scale(120, 900), every=3.0, inject=flush)
        # Then the sweepers rebuild it from the database: nothing lost, nothing run twice
        assert left == [], fleet.output()
        expected = dict.fromkeys(ids, SUCCESSFUL)
        figures, result = count("Redis FLUSHDB mid-drain", path, expected, fleet, flushes, started)
        assert_clean(figures, result, fleet)
    finally:
        fleet.close()
        server.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_terminate_backend")
def test_connection_terminations_every_one_to_two_seconds(fleet, broker, tmp_path):
    # Given workers draining jobs that outlast a lease
    started, path = time.monotonic(), tmp_path / "ledger.jsonl"
    ids = enqueue(tasks.counted, scale(60, 2000), str(path), 0.5, attempts=10)
    workers(fleet)
    terminated = 0

    def terminate():
        # The workers' own sessions in this test database only (never other databases').
        nonlocal terminated
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            terminated += cursor.fetchone()[0]

    # When their database connections are cut every 1-2 s
    left = drain(ids, timeout=scale(150, 1200), every=random.uniform(1, 2), inject=terminate)
    # Then nothing is lost, and no job ran twice while its worker lived
    assert left == [], fleet.output()
    name = f"pg_terminate_backend every 1-2 s ({broker and 'redis' or 'database'} broker)"
    expected = dict.fromkeys(ids, SUCCESSFUL)
    figures, result = count(name, path, expected, fleet, terminated, started)
    assert_clean(figures, result, fleet)


# --- leases -----------------------------------------------------------------------------------
def test_long_jobs_with_short_leases_under_load(fleet, broker, tmp_path):
    # Given jobs four times as long as the lease, more of them than there are slots
    started, path = time.monotonic(), tmp_path / "ledger.jsonl"
    ids = enqueue(tasks.counted, scale(24, 200), str(path), 2.0)
    workers(fleet, 2, 6, "--shutdown-timeout", "1")
    # When the workers drain them (leases of 3 s renewed every 0.5 s)
    left = drain(ids, timeout=scale(90, 600))
    # Then none was rescued from a live worker
    assert left == [], fleet.output()
    name = f"long jobs, short leases ({broker and 'redis' or 'database'} broker)"
    figures, result = count(name, path, dict.fromkeys(ids, SUCCESSFUL), fleet, 0, started)
    assert_clean(figures, result, fleet)
    assert result.twice_after_expiry == []


def test_sigterm_with_jobs_longer_than_the_lease(fleet, broker, tmp_path):
    # Given a worker running jobs twice as long as a lease, beside another worker
    started, path = time.monotonic(), tmp_path / "ledger.jsonl"
    # (it runs them all; the other one has a free slot for each, should one be rescued)
    n = scale(4, 16)
    ids = enqueue(tasks.counted, n, str(path), 6.0, attempts=3)
    slots = ("--concurrency", str(n), "--shutdown-timeout", "20")
    first = fleet.spawn("runworker", *slots)
    wait_for(
        lambda: len([e for e in ledger.read(path) if e.pid in fleet.pids(first)]) == n,
        timeout=60,
        message="the first worker running every job",
    )
    fleet.spawn("runworker", *slots)
    # When the first is asked to stop (SIGTERM) while its jobs still have seconds to go
    first.signal(signal.SIGTERM)
    left = drain(ids, timeout=scale(90, 300))
    # Then its jobs finish there, and the other worker never rescued them meanwhile
    assert left == [], fleet.output()
    name = f"SIGTERM, jobs longer than the lease ({broker and 'redis' or 'database'} broker)"
    figures, result = count(name, path, dict.fromkeys(ids, SUCCESSFUL), fleet, 1, started)
    assert_clean(figures, result, fleet)


def test_skewed_clocks_under_load(fleet, broker, tmp_path):
    # Given workers whose clocks are 45 s behind and 45 s ahead of a third one
    started, path = time.monotonic(), tmp_path / "ledger.jsonl"
    ids = enqueue(tasks.counted, scale(30, 300), str(path), 1.5)
    # (enqueued two minutes ago, so that the worker whose clock is behind finds them due)
    Job.objects.filter(pk__in=ids).update(run_after=timezone.now() - timedelta(minutes=2))
    for offset in ("-45s", "+45s", None):
        env = skewed_env(offset) if offset else None
        fleet.spawn("runworker", "--concurrency", "4", env=env)
    # When they drain jobs that last three heartbeats (leases of 3 s, heartbeats of 0.5 s)
    left = drain(ids, timeout=scale(90, 600))
    # Then no live job was rescued because of a clock
    assert left == [], fleet.output()
    name = f"clocks 45 s apart ({broker and 'redis' or 'database'} broker)"
    figures, result = count(name, path, dict.fromkeys(ids, SUCCESSFUL), fleet, 2, started)
    assert_clean(figures, result, fleet)
    assert result.twice_after_expiry == []


# --- retries ----------------------------------------------------------------------------------
def test_poison_jobs_fail_after_exactly_max_attempts(fleet, broker, tmp_path):
    # Given jobs that always fail, with 3 attempts and no backoff
    started, path = time.monotonic(), tmp_path / "ledger.jsonl"
    ids = enqueue(tasks.poison, scale(30, 300), str(path))
    workers(fleet)
    # When the workers drain them
    left = drain(ids, timeout=scale(90, 600))
    # Then each is FAILED after exactly three executions
    assert left == [], fleet.output()
    name = f"poison jobs ({broker and 'redis' or 'database'} broker)"
    figures, result = count(name, path, dict.fromkeys(ids, FAILED), fleet, 0, started)
    assert_clean(figures, result, fleet)
    runs: dict[str, int] = {}
    for execution in ledger.read(path):
        runs[execution.job] = runs.get(execution.job, 0) + 1
    assert runs == dict.fromkeys(ids, 3)


def test_immediate_retries(fleet, broker, tmp_path):
    # Given jobs whose first attempt fails and is retried at once (maybe by the same process)
    started, path = time.monotonic(), tmp_path / "ledger.jsonl"
    ids = enqueue(tasks.fails_once, scale(48, 500), str(path))
    workers(fleet, 1, 8)
    # When a worker drains them
    left = drain(ids, timeout=scale(90, 600))
    # Then each succeeded on its second attempt, and no attempt ran twice
    assert left == [], fleet.output()
    name = f"immediate retries ({broker and 'redis' or 'database'} broker)"
    figures, result = count(name, path, dict.fromkeys(ids, SUCCESSFUL), fleet, 0, started)
    assert_clean(figures, result, fleet)
    assert result.twice_after_expiry == []


# --- beat -------------------------------------------------------------------------------------
def test_two_beats_killed_and_restarted(fleet, tmp_path):
    # Given an every-second schedule and two beats racing for it
    Schedule.objects.create(name="tick", task="tests.tasks.add", cron="* * * * * *", args=[1, 1])
    started = time.monotonic()
    beats = [fleet.spawn("runbeat", "--check-interval", "0.5") for _ in range(2)]
    kills, until = 0, time.monotonic() + scale(8, 120)
    # When one of them is SIGKILLed every ~1.5 s and restarted (the other one lives on)
    while time.monotonic() < until:
        time.sleep(1.5)
        victim = beats.pop(random.randrange(2))
        kills += 1 if fleet.kill(victim) else 0
        beats.append(fleet.spawn("runbeat", "--check-interval", "0.5"))
    time.sleep(2)
    for beat in beats:
        fleet.kill(beat)
    # Then every second from the first fire time to the last fired exactly once
    fires = ScheduleFire.objects.filter(schedule__name="tick").order_by("fire_time")
    times = list(fires.values_list("fire_time", flat=True))
    expected = int((times[-1] - times[0]).total_seconds()) + 1
    enqueued = Job.objects.filter(task_path="tests.tasks.add").count()
    missed, duplicates = expected - len(set(times)), enqueued - len(set(times))
    record(
        Figures("two beats killed and restarted", expected, kills, missed, duplicates, 0,
                round(time.monotonic() - started, 1))
    )  # fmt: skip
    assert (missed, duplicates) == (0, 0)
    assert kills > 0
