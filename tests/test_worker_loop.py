"""One worker process, in-process: ``run_once(now)`` claims into the pool, timeouts, queues."""

import logging
import threading

from django.utils import timezone

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.worker.process import EXIT_FATAL, EXIT_REPLACE
from tests import tasks
from tests.conftest import renamed_column, wait_for

JOB_TIMEOUT = "django_jobs.exceptions.JobTimeout"


def drive(worker, until, timeout=30.0, message=""):
    """Call ``run_once`` until ``until()`` is true, as ``run()`` would between waits."""

    def step():
        worker.run_once(timezone.now())
        return until()

    return wait_for(step, timeout=timeout, message=message)


def thread_alive(ident) -> bool:
    return any(t.ident == ident and t.is_alive() for t in threading.enumerate())


def status(result) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=result.id)


def finished(*results):
    return lambda: all(status(r) in (JobStatus.SUCCESSFUL, JobStatus.FAILED) for r in results)


def errors(result) -> list[str]:
    job = Job.objects.get(pk=result.id)
    return [e["exception_class_path"] for e in job.errors]


def test_worker_runs_sync_and_async_jobs(make_worker):
    # Given sync and async jobs
    sync = [tasks.add.enqueue(i, i) for i in range(3)]
    async_ = tasks.async_add.enqueue(2, 5)
    worker = make_worker(concurrency=2)
    # When the worker loop runs
    drive(worker, finished(*sync, async_))
    # Then every job succeeded on this worker
    for i, result in enumerate(sync):
        result.refresh()
        assert (result.status, result.return_value) == ("SUCCESSFUL", 2 * i)
        assert result.worker_ids == [worker.worker_id]
    async_.refresh()
    assert (async_.status, async_.return_value) == ("SUCCESSFUL", 7)


def test_worker_claims_no_more_than_its_free_slots(make_worker, tmp_path):
    # Given three jobs that block until a file appears, and a worker with two slots
    gate = tmp_path / "gate"
    results = [tasks.waits_for_file.enqueue(str(gate)) for _ in range(3)]
    worker = make_worker(concurrency=2)
    # When the loop runs while they block
    assert worker.run_once(timezone.now()) == 2
    assert worker.run_once(timezone.now()) == 0
    # Then only two run, on threads, and the third waits for a free slot
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 2
    assert Job.objects.filter(status=JobStatus.READY).count() == 1
    # When the jobs are let go, then the third one is claimed and all finish
    gate.touch()
    drive(worker, finished(*results))
    assert {status(r) for r in results} == {JobStatus.SUCCESSFUL}


def test_sync_job_over_its_timeout_is_stopped_and_its_slot_freed(make_worker):
    # Given a CPU-bound job with a 1 s timeout, on a one-slot worker
    stuck = tasks.busy_loop.enqueue()
    worker = make_worker(concurrency=1)
    # When the loop runs past the timeout
    drive(worker, finished(stuck), message="busy_loop to be timed out")
    # Then the job FAILED with JobTimeout, and the slot serves the next job
    assert status(stuck) == JobStatus.FAILED
    assert errors(stuck) == [JOB_TIMEOUT]
    wait_for(worker.pool.idle, timeout=10)
    after = tasks.add.enqueue(1, 1)
    drive(worker, finished(after))
    assert status(after) == JobStatus.SUCCESSFUL
    assert worker.exit_code == 0


def test_async_job_over_its_timeout_is_cancelled_and_its_slot_freed(make_worker):
    # Given an async job with a 0.5 s timeout, on a one-slot worker
    slow = tasks.async_slow.enqueue()
    worker = make_worker(concurrency=1)
    # When the loop runs past the timeout
    drive(worker, finished(slow))
    # Then the job FAILED with JobTimeout, and the slot serves the next job
    assert errors(slow) == [JOB_TIMEOUT]
    after = tasks.async_add.enqueue(1, 1)
    drive(worker, finished(after))
    assert status(after) == JobStatus.SUCCESSFUL


def test_job_stuck_in_c_fails_and_asks_for_a_new_process(make_worker):
    # Given a job blocked in a 4 s C call with a 1 s timeout
    stuck = tasks.blocks_in_c.enqueue(4)
    worker = make_worker(concurrency=1)
    assert worker.run_once(timezone.now()) == 1
    wait_for(lambda: worker.pool.running, timeout=5)  # a slot took it
    [running] = worker.pool.running.values()
    # When the loop keeps running past the timeout and the grace period
    drive(worker, lambda: worker.exit_code, timeout=10, message="EXIT_REPLACE")
    # Then the worker stops for a fresh process, and the job FAILED with JobTimeout
    assert worker.exit_code == EXIT_REPLACE
    assert worker.stopping.is_set()
    assert worker.run_once(timezone.now()) == 0
    wait_for(lambda: status(stuck) == JobStatus.FAILED, timeout=10)
    assert errors(stuck) == [JOB_TIMEOUT]
    # When the stuck thread's C call finally returns, then it writes nothing more
    worker.stop()
    worker._close()
    wait_for(lambda: not thread_alive(running.thread_id), timeout=15, message="stuck thread")
    assert errors(stuck) == [JOB_TIMEOUT]
    assert status(stuck) == JobStatus.FAILED


def test_worker_only_claims_from_its_queues(make_worker):
    # Given a job on "default" and one on "emails", and a worker of queue "emails"
    default = tasks.add.enqueue(1, 1)
    other = tasks.other_queue.enqueue("x")
    worker = make_worker(queues=["emails"])
    # When its loop runs until the "emails" job is done
    drive(worker, finished(other))
    # Then the "default" job was left alone
    assert worker.run_once(timezone.now()) == 0
    assert status(other) == JobStatus.SUCCESSFUL
    assert status(default) == JobStatus.READY


def test_run_once_returns_zero_when_nothing_is_ready(make_worker):
    # Given a worker and no jobs
    worker = make_worker(concurrency=2)
    # When the loop runs, then it claims nothing
    assert worker.run_once(timezone.now()) == 0
    # When one job is enqueued and done, then the next iteration finds nothing again
    done = tasks.add.enqueue(1, 2)
    assert worker.run_once(timezone.now()) == 1
    drive(worker, finished(done))
    wait_for(worker.pool.idle, timeout=10)
    assert worker.run_once(timezone.now()) == 0


def test_outcome_write_failing_for_good_stops_the_worker(make_worker, tmp_path, caplog):
    # Given a worker running a job that finishes when the test says
    gate = tmp_path / "finish"
    running = tasks.waits_for_file.enqueue(str(gate))
    worker = make_worker()
    assert worker.run_once(timezone.now()) == 1
    # When the column its outcome goes to disappears, and the job finishes (no claim after it)
    with (
        caplog.at_level(logging.ERROR, "django_jobs"),
        renamed_column("django_jobs_job", "return_value"),
    ):
        gate.touch()
        wait_for(worker.stopping.is_set, timeout=15, message="the worker to stop")
    # Then the completion alone stopped it: an ERROR naming it, exit status EXIT_FATAL
    assert worker.exit_code == EXIT_FATAL
    assert any("statement=complete" in r.getMessage() for r in caplog.records), caplog.text
    # And the job is left RUNNING, for rescue once its lease runs out
    assert status(running) == JobStatus.RUNNING
