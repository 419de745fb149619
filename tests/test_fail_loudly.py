"""A worker whose database statements fail for good stops loudly; a passing fault is ridden out.

The schema is broken under real ``runworker`` processes (a column renamed on the per-test
database, renamed back before the test ends): the claim, the heartbeat and the completion each
log an ERROR naming the statement, the process exits ``EXIT_FATAL`` and the supervisor gives up
instead of replacing it. A dropped connection, by contrast, is retried and the worker serves on.
"""

import re

import pytest
from django.db import connection

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from django_jobs.worker.process import EXIT_FATAL
from tests import tasks
from tests.conftest import BASE_OPTIONS, renamed_column, wait_for

pytestmark = pytest.mark.processes

#: The sweep of the Redis broker reads the job table too, and may meet the damage first.
REDIS = BASE_OPTIONS.get("broker") == "redis"


def assert_stopped_loudly(worker, statements: set[str], timeout: float = 30) -> str:
    """The process exited EXIT_FATAL after an ERROR naming one of ``statements``; return it."""
    assert worker.wait(timeout) == EXIT_FATAL, worker.output()
    output = worker.output()
    named = re.findall(
        r" ERROR \S+ .*retrying cannot mend it; stopping statement=(.+?) worker=", output
    )
    allowed = statements | ({"sweep", "start"} if REDIS else set())
    assert named, output
    assert set(named) <= allowed, output
    return named[0]


def ran_one_job(worker) -> None:
    """Wait until ``worker`` serves: a job runs to SUCCESSFUL."""
    result = tasks.add.enqueue(1, 2)
    wait_for(
        lambda: Job.objects.get(pk=result.id).status == JobStatus.SUCCESSFUL,
        message=f"a first job to run\n{worker.output()}",
    )


def test_claim_on_a_broken_schema_stops_every_process_and_the_supervisor(spawn_worker):
    # Given a supervisor with two worker processes, serving
    worker = spawn_worker("--processes", "2")
    ran_one_job(worker)
    wait_for(lambda: Worker.objects.count() == 2, message="both processes to register")
    # When a column the claim reads disappears under them
    with renamed_column("django_jobs_job", "run_after"):
        # Then each process logs an ERROR naming the claim, and exits EXIT_FATAL; the
        # supervisor replaces neither and exits EXIT_FATAL too
        assert_stopped_loudly(worker, {"claim"})
    assert "not replacing it" in worker.output()
    assert Worker.objects.count() == 2  # no replacement ever registered
    assert Worker.objects.filter(stopped_at=None).count() == 0


def test_burst_worker_whose_claim_fails_for_good_exits_non_zero(spawn_worker):
    # Given a ready job and a column the claim reads renamed
    tasks.add.enqueue(1, 2)
    with renamed_column("django_jobs_job", "run_after"):
        # When a burst worker runs
        worker = spawn_worker("--burst")
        # Then it does not report "nothing to do" (0): it exits EXIT_FATAL, naming the claim
        assert_stopped_loudly(worker, {"claim"})


def test_heartbeat_on_a_broken_schema_stops_the_worker(spawn_worker):
    # Given a serving worker
    worker = spawn_worker()
    ran_one_job(worker)
    # When the column its heartbeat writes disappears
    with renamed_column("django_jobs_worker", "last_heartbeat_at"):
        # Then it logs an ERROR naming the heartbeat and exits EXIT_FATAL
        assert_stopped_loudly(worker, {"heartbeat"})


def test_completion_on_a_broken_schema_stops_the_worker(spawn_worker):
    # Given a worker running a job that takes a second
    running = tasks.sleep.enqueue(1.5)
    worker = spawn_worker()
    wait_for(
        lambda: Job.objects.get(pk=running.id).status == JobStatus.RUNNING,
        message=f"the job to start\n{worker.output()}",
    )
    # When the column its outcome is written to disappears before it finishes
    with renamed_column("django_jobs_job", "return_value"):
        # Then writing the outcome logs an ERROR naming the completion, and the worker exits
        # EXIT_FATAL (its claim, woken by the freed slot, may meet the damage as well: the
        # completion alone stopping the worker is test_worker_loop's test)
        assert_stopped_loudly(worker, {"complete", "claim"})
        assert "statement=complete" in worker.output()
    # And the job is left RUNNING for rescue once its lease runs out, not lost or finished
    assert Job.objects.get(pk=running.id).status == JobStatus.RUNNING


def test_worker_that_cannot_register_is_not_restarted_for_ever(spawn_worker):
    # Given a column of the worker table renamed
    with renamed_column("django_jobs_worker", "hostname"):
        # When a worker starts
        worker = spawn_worker()
        # Then registering fails: an ERROR naming the start, exit EXIT_FATAL, and the
        # supervisor does not start it again
        assert_stopped_loudly(worker, {"start"})
    assert worker.output().count("worker process stopped on an error") == 1


def test_outcome_the_database_refuses_fails_that_job_alone_and_the_worker_serves_on(spawn_worker):
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL's jsonb refuses \\u0000 in a return value")
    # Given a serving worker
    worker = spawn_worker()
    ran_one_job(worker)
    # When a job returns a value the database refuses (bad data, not bad SQL)
    refused = tasks.returns_nul.enqueue()
    # Then that job alone ends FAILED with the database's refusal, not retried, at once (not
    # after its lease), and the worker serves on
    wait_for(
        lambda: Job.objects.get(pk=refused.id).status == JobStatus.FAILED, message="the failure"
    )
    job = Job.objects.get(pk=refused.id)
    assert job.attempts == 1
    assert "DataError" in job.errors[-1]["exception_class_path"], job.errors
    assert "the database refuses this outcome" in worker.output()
    ran_one_job(worker)
    assert worker.proc.poll() is None
    assert "retrying cannot mend" not in worker.output()


def kill_other_connections() -> int:
    """Drop every other session on the test database (the worker's); return how many."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return len(cursor.fetchall())
        cursor.execute(
            "SELECT id FROM information_schema.PROCESSLIST WHERE db = DATABASE() "
            "AND id <> CONNECTION_ID()"
        )
        ids = [row[0] for row in cursor.fetchall()]
        for session in ids:
            cursor.execute(f"KILL CONNECTION {int(session)}")
        return len(ids)


def test_dropped_connections_are_retried_and_the_worker_serves_on(spawn_worker):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server to drop the connection")
    # Given a serving worker
    worker = spawn_worker()
    ran_one_job(worker)
    # When the server drops its connections (a transient fault)
    assert kill_other_connections() > 0
    # Then the worker reconnects, keeps serving and logs no ERROR
    ran_one_job(worker)
    assert worker.proc.poll() is None, worker.output()
    assert " ERROR " not in worker.output(), worker.output()
    # And it did meet the dropped connection, and retried it
    assert re.search(r"(claim|outcome\(s\)) failed error=", worker.output()), worker.output()
