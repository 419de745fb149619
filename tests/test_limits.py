"""Concurrency and rate limits per key: claimed only while the key's limits allow."""

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.exceptions import InvalidTaskOptions
from django_jobs.jobs.limits import parse_rate
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks import JobTask
from django_jobs.tasks_api import task_backends
from tests import tasks
from tests.conftest import max_overlap, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

#: Observed maxima, printed at the end of the process tests (the report quotes them).
REPORT = Path(os.environ.get("LIMITS_REPORT", "/tmp/hflow2-limits.jsonl"))


def claim(limit=10, now=None, worker="worker-a", backend="default"):
    return task_backends[backend].broker.claim(worker, [], limit, now or timezone.now())


def finish(jobs) -> None:
    Job.objects.filter(pk__in=[j.pk for j in jobs]).mark_succeeded(timezone.now(), None)


# --- options --------------------------------------------------------------------------------
def test_gated_jobs_carry_their_limit_key_and_others_none():
    plain = Job.objects.get(pk=tasks.add.enqueue(1, 2).id)
    per_tenant = Job.objects.get(pk=tasks.two_per_tenant.enqueue("acme", "/tmp").id)
    per_task = Job.objects.get(pk=tasks.one_at_a_time.enqueue("/tmp").id)
    shared = Job.objects.get(pk=tasks.three_per_minute.enqueue(1).id)
    assert plain.limit_key is None
    assert per_tenant.limit_key == "tests.tasks.two_per_tenant:acme"
    assert per_task.limit_key == "tests.tasks.one_at_a_time"
    assert shared.limit_key == "shared-api"
    assert per_tenant.options["concurrency_limit"] == 2


@pytest.mark.parametrize(
    ("rate", "parsed"), [("10/s", (10, 1.0)), ("100/m", (100, 60.0)), ("5/2h", (5, 7200.0))]
)
def test_rate_limits_parse(rate, parsed):
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize(
    "options",
    [{"rate_limit": "ten/s"}, {"rate_limit": "0/s"}, {"concurrency_limit": 0}, {"limit_key": 3}],
)
def test_bad_limit_options_are_refused(options):
    with pytest.raises(InvalidTaskOptions):
        tasks.add.using(**options)


def test_limits_can_be_set_with_using():
    task = tasks.add.using(concurrency_limit=1)
    assert isinstance(task, JobTask)
    job = Job.objects.get(pk=task.enqueue(1, 1).id)
    assert job.limit_key == "tests.tasks.add"


# --- concurrency --------------------------------------------------------------------------
def test_concurrency_limit_holds_back_jobs_without_spending_attempts():
    # Given five jobs of a task allowed one at a time
    for _ in range(5):
        tasks.one_at_a_time.enqueue("/tmp")
    # When a worker with ten free slots claims, then it gets one job, and nobody gets more
    first = claim()
    assert len(first) == 1
    assert claim(worker="worker-b") == []
    waiting = Job.objects.filter(status=JobStatus.READY)
    assert waiting.count() == 4 and set(waiting.values_list("attempts", flat=True)) == {0}
    # When it finishes, then the next one can start
    finish(first)
    assert len(claim(worker="worker-b")) == 1


def test_concurrency_limit_is_per_key():
    for tenant in ("acme", "acme", "acme", "globex", "globex", "globex"):
        tasks.two_per_tenant.enqueue(tenant, "/tmp")
    jobs = claim()
    per_key = sorted(j.limit_key.rsplit(":", 1)[1] for j in jobs)
    assert per_key == ["acme", "acme", "globex", "globex"]


def test_ungated_jobs_are_claimed_alongside_gated_ones():
    tasks.one_at_a_time.enqueue("/tmp")
    tasks.one_at_a_time.enqueue("/tmp")
    tasks.add.enqueue(1, 2)
    jobs = claim()
    assert sorted(j.task_path for j in jobs) == ["tests.tasks.add", "tests.tasks.one_at_a_time"]


def test_paused_queues_hold_gated_jobs_too():
    tasks.one_at_a_time.enqueue("/tmp")
    broker = task_backends["default"].broker
    broker.set_paused(frozenset({"default"}))
    try:
        assert broker.claim("worker-a", ["default"], 5, timezone.now()) == []
    finally:
        broker.set_paused(frozenset())


# --- rate -----------------------------------------------------------------------------------
def test_rate_limit_allows_n_starts_per_sliding_window():
    # Given ten jobs of a task allowed five starts a second
    for i in range(10):
        tasks.five_per_second.enqueue(i)
    now = timezone.now()
    # When workers claim, then five start now and the rest wait a second
    assert len(claim(now=now)) == 5
    assert claim(now=now + timedelta(milliseconds=500), worker="worker-b") == []
    # finished jobs do not give tokens back: a rate counts starts
    finish(Job.objects.filter(status=JobStatus.RUNNING))
    assert claim(now=now + timedelta(milliseconds=900)) == []
    assert len(claim(now=now + timedelta(seconds=1.01), worker="worker-b")) == 5


def test_rate_limit_key_is_shared_between_calls():
    for i in range(5):
        tasks.three_per_minute.enqueue(i)
    now = timezone.now()
    assert len(claim(now=now)) == 3
    assert claim(now=now + timedelta(seconds=59)) == []
    assert len(claim(now=now + timedelta(seconds=61))) == 2


# --- Redis ----------------------------------------------------------------------------------
@pytest.mark.redis
def test_redis_broker_leaves_gated_jobs_to_the_database(redis_backend, redis_db):
    # Given a gated job and a plain one on the Redis backend
    gated = tasks.one_at_a_time.using(backend="redis").enqueue("/tmp")
    plain = tasks.add.using(backend="redis").enqueue(1, 2)
    # Then only the plain one's id went to Redis
    published = b"".join(redis_db.keys("*ready*") or [b""])
    assert published  # the ready set of the default queue exists
    members = set()
    for key in redis_db.keys("*ready*"):
        members |= {m.decode() for m in redis_db.zrange(key, 0, -1)}
    assert plain.id in members and gated.id not in members
    # And a Redis worker claims both, the gated one through the database once its heartbeat
    # sweep saw gated jobs waiting
    assert redis_backend.broker.gated.refresh(timezone.now())
    claimed = claim(backend="redis")
    assert {str(j.pk) for j in claimed} == {plain.id, gated.id}


# --- real workers ---------------------------------------------------------------------------
def _runs(directory: Path) -> dict[str, list]:
    runs: dict[str, list] = {}
    for path in directory.glob("*.run"):
        key, start, end = path.read_text().split()
        runs.setdefault(key, []).append((float(start), float(end)))
    return runs


def _report(name: str, value) -> None:
    with REPORT.open("a") as f:
        f.write(json.dumps({"test": name, "vendor": connection.vendor, **value}) + "\n")


@pytest.mark.processes
def test_concurrency_limits_hold_across_worker_processes(spawn_worker, fast_backend, tmp_path):
    # Given two tenants limited to two running jobs each, and a task limited to one
    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(8):
        tasks.two_per_tenant.enqueue("acme" if i % 2 else "globex", str(runs), 0.15)
    for _ in range(6):
        tasks.one_at_a_time.enqueue(str(runs), 0.1)
    # When two worker processes with four slots each run them
    workers = [spawn_worker("--concurrency", "4") for _ in range(2)]
    done = Job.objects.filter(status=JobStatus.SUCCESSFUL)
    wait_for(lambda: done.count() == 14, timeout=60, message="14 jobs done")
    # Then at no instant did a key run more jobs than its limit
    overlap = {key: max_overlap(intervals) for key, intervals in _runs(runs).items()}
    _report("concurrency", {"max_running": overlap})
    assert overlap["acme"] <= 2 and overlap["globex"] <= 2 and overlap["one"] == 1
    assert set(Job.objects.values_list("attempts", flat=True)) == {1}
    assert {str(w.pid) for w in workers}  # both started


@pytest.mark.processes
def test_rate_limit_holds_across_worker_processes(spawn_worker, fast_backend):
    # Given two worker processes, up and waiting
    from django_jobs.jobs.models import Worker

    for _ in range(2):
        spawn_worker("--concurrency", "2")
    wait_for(lambda: Worker.objects.filter(stopped_at__isnull=True).count() == 2, timeout=30)
    # When fifteen jobs of a task allowed five starts per second arrive
    for i in range(15):
        tasks.five_per_second.enqueue(i)
    done = Job.objects.filter(status=JobStatus.SUCCESSFUL)
    wait_for(lambda: done.count() == 15, timeout=60, message="15 jobs done")
    # Then no second (sliding) held more than five starts
    starts = sorted(t.timestamp() for t in Job.objects.values_list("last_attempted_at", flat=True))
    tightest = min(starts[i + 5] - starts[i] for i in range(len(starts) - 5))
    per_window = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    workers = {w for ids in Job.objects.values_list("worker_ids", flat=True) for w in ids}
    _report("rate", {"max_starts_in_1s": per_window, "workers": len(workers)})
    assert per_window <= 5 and tightest >= 1.0


@pytest.mark.redis
@pytest.mark.processes
def test_redis_workers_respect_concurrency_limits(spawn_worker, redis_backend, tmp_path):
    # Given gated and plain jobs on the Redis backend, and two Redis workers
    runs = tmp_path / "runs"
    runs.mkdir()
    for _ in range(6):
        tasks.one_at_a_time.using(backend="redis").enqueue(str(runs), 0.1)
    for i in range(6):
        tasks.add.using(backend="redis").enqueue(i, i)
    for _ in range(2):
        spawn_worker("--backend", "redis", "--concurrency", "3")
    # When they run them, then every job ran and the gated ones one at a time
    done = Job.objects.filter(status=JobStatus.SUCCESSFUL)
    wait_for(lambda: done.count() == 12, timeout=60, message="12 jobs done")
    overlap = max_overlap(_runs(runs)["one"])
    _report("redis concurrency", {"max_running": {"one": overlap}})
    assert overlap == 1
