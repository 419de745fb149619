"""Leases are timed by the database's clock: worker hosts whose clocks disagree stay safe."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from tests.faults import ledger
from tests.faults import tasks as fault_tasks
from tests.faults.harness import Fleet, drain, skewed_env

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="SQLite's clock is the clock of each process using the file (one host)",
    ),
]


@pytest.fixture
def fleet(transactional_db, tmp_path):
    processes = Fleet(tmp_path)
    yield processes
    processes.close()


@pytest.mark.parametrize("offset", ["-45s", "+45s"])
def test_worker_with_a_skewed_clock_never_has_live_jobs_rescued(fleet, tmp_path, offset):
    # Given jobs that last longer than a lease, enqueued two minutes ago (so that a worker
    # whose clock is behind finds them due too)
    path = tmp_path / "ledger.jsonl"
    results = [fault_tasks.counted.enqueue(str(path), 4.0) for _ in range(6)]
    ids = [r.id for r in results]
    Job.objects.filter(pk__in=ids).update(run_after=timezone.now() - timedelta(minutes=2))
    # When a worker whose host clock is 45 s off runs them beside a worker with the right
    # time (leases of 3 s renewed every 0.5 s: the skew is far larger than lease - heartbeat)
    skewed = fleet.spawn("runworker", "--concurrency", "2", env=skewed_env(offset))
    normal = fleet.spawn("runworker", "--concurrency", "2")
    left = drain(ids, timeout=90)
    # Then no job was rescued from under its live worker: each ran once and succeeded
    assert left == [], fleet.output()
    jobs = Job.objects.filter(pk__in=[r.id for r in results])
    assert {(job.status, job.attempts) for job in jobs} == {(JobStatus.SUCCESSFUL, 1)}, [
        job.errors for job in jobs
    ]
    executions = ledger.read(path)
    assert sorted(e.job for e in executions) == sorted(r.id for r in results)
    # And both workers ran some of them (the case under test happened)
    for handle in (skewed, normal):
        pids = set(fleet.pids(handle))
        assert any(e.pid in pids for e in executions), fleet.output()
