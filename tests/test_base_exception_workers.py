"""Real ``runworker`` processes running tasks that raise BaseException (SystemExit, exit(),
KeyboardInterrupt, GeneratorExit, the user's own): the job FAILS, the worker keeps serving.

Run on each database, and with the Redis broker (the ``redis-broker`` run).
"""

import signal

import pytest

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from tests import tasks
from tests.conftest import wait_for

pytestmark = pytest.mark.processes

EXPECTED = {
    "SystemExit": "builtins.SystemExit",
    "exit": "builtins.SystemExit",
    "KeyboardInterrupt": "builtins.KeyboardInterrupt",
    "GeneratorExit": "builtins.GeneratorExit",
    "Abort": "tests.tasks.Abort",
}


def job_of(result) -> Job:
    return Job.objects.get(pk=result.id)


def has_status(result, status):
    return lambda: job_of(result).status == status


def assert_failed_with(result, class_path: str) -> None:
    job = job_of(result)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1), job.errors
    [error] = job.errors
    assert error["exception_class_path"] == class_path
    assert "_raise_base" in error["traceback"]


def test_burst_worker_fails_base_exception_jobs_and_still_exits(spawn_worker):
    # Given sync and async jobs raising every kind of BaseException, and an ordinary job
    sync = {kind: tasks.raises_base.enqueue(kind) for kind in EXPECTED}
    async_ = {kind: tasks.async_raises_base.enqueue(kind) for kind in EXPECTED}
    ok = tasks.add.enqueue(2, 3)
    # When a burst worker runs them
    worker = spawn_worker("--burst", "--concurrency", "2")
    # Then it exits 0 on its own once nothing is left
    assert worker.wait(60) == 0, worker.output()
    # And each such job FAILED with its exception class and traceback, without a retry
    for kind, class_path in EXPECTED.items():
        assert_failed_with(sync[kind], class_path)
        assert_failed_with(async_[kind], class_path)
    # And the ordinary job ran
    assert job_of(ok).return_value == 5


def test_long_running_worker_keeps_serving_after_base_exceptions_and_stops_on_sigint(
    spawn_worker,
):
    # Given a worker serving with one slot
    worker = spawn_worker("--concurrency", "1")
    for kind in ("KeyboardInterrupt", "SystemExit"):
        # When a job raises KeyboardInterrupt (or SystemExit) from the task's own code
        bad = tasks.raises_base.enqueue(kind)
        wait_for(has_status(bad, JobStatus.FAILED), 30, message=f"the {kind} job to fail")
        # Then it FAILED with that class, and the next ordinary job runs on the same worker
        assert_failed_with(bad, EXPECTED[kind])
        good = tasks.add.enqueue(1, 1)
        wait_for(has_status(good, JobStatus.SUCCESSFUL), 30, message="the next job to run")
        assert worker.proc.poll() is None, worker.output()
    # And a real SIGINT to the worker still means a graceful stop
    worker.signal(signal.SIGINT)
    assert worker.wait(30) == 0, worker.output()
    assert "signal=SIGINT finishing running jobs" in worker.output()
