"""Redis down: commands still work, and a Redis-broker worker claims from the database.

Every test here takes Redis away, so each starts a private ``redis-server`` (or points at a
port where nothing listens): the shared Redis is never touched.
"""

import logging
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs.brokers.fallback import OUTAGE_NOTE
from django_jobs.console import queries
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from django_jobs.tasks_api import task_backends
from tests import tasks
from tests.conftest import FAST_OPTIONS, ManageProcess, process_env, wait_for
from tests.console import PASSWORD, make_user
from tests.private_redis import RedisServer, free_port

pytestmark = pytest.mark.processes

#: A worker silent for longer than a lease is stale.
STALE = timedelta(seconds=FAST_OPTIONS["lease_seconds"])


@pytest.fixture
def private_redis(tmp_path):
    """A running private Redis server, stopped at teardown."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    yield server
    server.stop()


def use_redis(settings, url: str):
    """TASKS['default'] on the Redis broker at ``url`` (the tests' short leases); its options."""
    options = {"broker": "redis", "redis_url": url, **FAST_OPTIONS}
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": [],
            "OPTIONS": options,
        }
    }
    return task_backends["default"], options


def successful() -> int:
    return Job.objects.filter(status=JobStatus.SUCCESSFUL).count()


def recorded(path) -> list[int]:
    return sorted(int(v) for v in path.read_text().split()) if path.exists() else []


def enqueue(backend, path, values, seconds: float) -> list[str]:
    calls = [(tasks.record_then_sleep, (str(path), v, seconds), {}) for v in values]
    return [result.id for result in backend.enqueue_many(calls)]


def note() -> str | None:
    """The note on the (one) live worker's row."""
    return Worker.objects.filter(stopped_at__isnull=True).values_list("note", flat=True).first()


def admin_page(name: str) -> str:
    client = Client()
    assert client.login(username=make_user("operator", superuser=True).username, password=PASSWORD)
    return client.get(reverse(name)).content.decode()


def settled(server) -> int:
    """Claims Redis served: each pops through claim.lua (EVALSHA), settling the last one's
    ids on the way."""
    return server.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


# --- commands --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [["check"], ["migrate", "--no-input"], ["jobs", "stats"], ["check", "--deploy"]],
    ids=["check", "migrate", "jobs-stats", "check-deploy"],
)
def test_commands_run_while_redis_is_unreachable(transactional_db, tmp_path, args):
    # Given the Redis broker pointed at a port where no Redis answers
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = process_env({"broker": "redis", "redis_url": url})
    # When an operator runs a management command
    command = ManageProcess(args, env, tmp_path / "command.log")
    code = command.wait(120)
    output = command.output()
    command.stop()
    # Then it succeeds: reachability is a runtime concern, not a system check error
    assert code == 0, output
    assert "SystemCheckError" not in output
    assert "django_jobs.E007" not in output
    if args == ["check", "--deploy"]:
        # And only the deployment checks say that Redis is unreachable, as a warning
        assert "django_jobs.W007" in output, output
    else:
        assert "django_jobs.W007" not in output, output


def test_enqueue_while_redis_is_down_commits_the_row_and_warns_once(
    transactional_db, settings, caplog
):
    # Given the Redis broker where no Redis answers
    use_redis(settings, f"redis://127.0.0.1:{free_port()}/0")
    # When jobs are enqueued one by one, each committed on its own
    with caplog.at_level(logging.DEBUG, logger="django_jobs"):
        results = [tasks.add.enqueue(n, n) for n in range(3)]
    # Then enqueue raised nothing and every row is committed, READY, for the database claim
    ready = Job.objects.filter(pk__in=[r.id for r in results], status=JobStatus.READY)
    assert ready.count() == 3
    # And one warning says the sweeper will publish them; the next pushes are skipped at once
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "sweeper will publish" in warnings[0], warnings
    assert sum("push skipped" in r.getMessage() for r in caplog.records) == 2


def test_database_fallback_serves_the_same_queues_pauses_and_limits(transactional_db, settings):
    # Given the Redis broker where no Redis answers, and jobs on three queues, two of them
    # for a task allowed one at a time
    backend, _ = use_redis(settings, f"redis://127.0.0.1:{free_port()}/0")
    emails = tasks.add.using(queue_name="emails").enqueue(1, 1)
    tasks.add.using(queue_name="reports").enqueue(2, 2)
    tasks.add.enqueue(3, 3)
    limited = [tasks.one_at_a_time.using(queue_name="emails").enqueue("/tmp") for _ in range(2)]
    broker = backend.broker
    broker.set_paused(frozenset({"reports"}))
    try:
        # When a worker serving emails and the paused reports queue claims with ten free slots
        claimed = broker.claim("w1", ["emails", "reports"], 10, timezone.now())
        # Then it gets, from the database, the emails job and one of the limited ones only
        ids = {str(job.pk) for job in claimed}
        assert len(ids) == 2 and emails.id in ids and ids & {r.id for r in limited}
        assert broker.note == OUTAGE_NOTE
    finally:
        broker.close()


def test_burst_worker_runs_database_jobs_while_redis_is_down(settings, spawn_worker, tmp_path):
    # Given jobs enqueued while Redis is unreachable (the push fails; enqueue does not raise)
    backend, options = use_redis(settings, f"redis://127.0.0.1:{free_port()}/0")
    path = tmp_path / "ran.txt"
    ids = enqueue(backend, path, range(5), 0)
    assert Job.objects.filter(pk__in=ids, status=JobStatus.READY).count() == 5
    # When a burst worker starts on that broker
    worker = spawn_worker("--burst", options=options)
    # Then it runs them from the database and exits cleanly
    assert worker.wait(60) == 0, worker.output()
    assert recorded(path) == list(range(5)), worker.output()


# --- a worker through an outage ----------------------------------------------------------------
def test_worker_polls_the_database_while_redis_is_down_then_returns_to_redis(
    settings, spawn_worker, private_redis, tmp_path
):
    # Given a worker on the Redis broker of a private Redis, running jobs through it
    backend, options = use_redis(settings, private_redis.url)
    worker = spawn_worker("--concurrency", "2", options=options)
    path = tmp_path / "ran.txt"
    enqueue(backend, path, range(10), 0.02)
    wait_for(lambda: successful() == 10, 60, message="the first jobs, through Redis")
    assert note() == ""
    # When Redis goes down
    private_redis.stop()
    # And jobs are enqueued during the outage: the rows commit, the failed push is not raised
    during = enqueue(backend, path, range(10, 20), 0.02)
    assert Job.objects.filter(pk__in=during).count() == 10
    # Then the worker claims them straight from the database
    wait_for(lambda: successful() == 20, 60, message="jobs to run while Redis is down")
    # And says so on its worker row and on the dashboard
    wait_for(lambda: note() == OUTAGE_NOTE, 30, message="the worker row to show the outage")
    rows = queries.workers("default", timezone.now(), STALE)
    assert [row["note"] for row in rows] == [OUTAGE_NOTE]
    assert OUTAGE_NOTE in admin_page("admin:django_jobs_worker_changelist")
    # When more jobs are enqueued and Redis starts again (empty) while they are still queued
    enqueue(backend, path, range(20, 40), 0.1)
    wait_for(lambda: successful() >= 22, 60, message="the outage backlog to start")
    private_redis.start()
    # Then the worker goes back to Redis, and every job runs exactly once
    wait_for(lambda: note() == "", 60, message="the worker to return to Redis")
    wait_for(lambda: successful() == 40, 60, message="the backlog to drain")
    # And new jobs are dispatched through Redis again
    before = settled(private_redis)
    enqueue(backend, path, range(40, 50), 0.02)
    wait_for(lambda: successful() == 50, 60, message="jobs after the outage")
    assert settled(private_redis) > before
    assert recorded(path) == list(range(50)), worker.output()
    assert set(Job.objects.values_list("attempts", flat=True)) == {1}
    # And the log says it once each way, instead of a line per claim or heartbeat
    output = worker.output()
    assert len(re.findall(r"WARNING .*polling the database", output)) == 1, output
    assert len(re.findall(r"INFO .*dispatching through redis again", output)) == 1, output
    # (the listener losing Redis, a sweep or two before the claim loop noticed, the switch)
    assert len(re.findall(r" WARNING ", output)) <= 5, output


def test_hung_redis_keeps_its_ids_yet_no_job_is_claimed_twice(
    transactional_db, settings, private_redis
):
    # Given three jobs published to Redis
    backend, _ = use_redis(settings, private_redis.url)
    ids = sorted(tasks.add.enqueue(n, n).id for n in range(3))
    ready = private_redis.client()
    assert ready.zcard("django_jobs:default:ready:default") == 3
    broker = backend.broker
    try:
        # When Redis hangs (SIGSTOP: it accepts connections, answers nothing, keeps its data)
        private_redis.pause()
        # Then a claim still returns (bounded by the socket timeout) with the jobs, from the
        # database, and the broker says so
        first = broker.claim("w1", ["default"], 10, timezone.now())
        assert sorted(str(job.pk) for job in first) == ids
        assert broker.note == OUTAGE_NOTE
        # When Redis resumes, still holding the three ids
        private_redis.resume()
        assert ready.zcard("django_jobs:default:ready:default") == 3
        # Then claims go through Redis again, and its stale ids are dropped, not claimed again
        later: list = []

        def back_on_redis() -> bool:
            later.extend(broker.claim("w2", ["default"], 10, timezone.now()))
            return broker.note == ""

        wait_for(back_on_redis, 30, interval=0.2, message="claims to go through Redis again")
        assert later == []
        assert ready.zcard("django_jobs:default:ready:default") == 0
        assert ready.zcard("django_jobs:default:inflight") == 0
        rows = Job.objects.filter(pk__in=ids).values_list("status", "attempts", "claimed_by")
        assert set(rows) == {(JobStatus.RUNNING, 1, "w1")}
    finally:
        broker.close()
        ready.close()
