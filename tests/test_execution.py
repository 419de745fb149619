"""Running one claimed job: outcomes, retry policy, context, signals, fencing and leases.

``run_attempt`` closes the calling thread's obsolete connections when it is done (it runs on a
worker thread), so these tests use committed rows (``transactional_db``).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.jobs import leases
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from django_jobs.tasks_api import TaskResultStatus, task_backends, task_finished, task_started
from django_jobs.worker import registration
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER_LOST = "django_jobs.exceptions.WorkerLost"


def call(task, args, kwargs):
    return task.func(*args, **kwargs)


def backend():
    return task_backends["default"]


def claim(worker_id="worker-a", now=None):
    [job] = backend().broker.claim(worker_id, [], 1, now or timezone.now())
    return job


def run(job, worker_id="worker-a") -> Attempt:
    return run_attempt(Attempt(job, worker_id, backend()), call=call)


def claim_and_run(worker_id="worker-a") -> Attempt:
    return run(claim(worker_id), worker_id)


def row(result) -> Job:
    return Job.objects.get(pk=result.id)


def expire(result) -> None:
    """Make a running job's lease run out, as if its worker had died."""
    past = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(pk=result.id).update(lease_expires_at=past)


def test_success_stores_return_value(transactional_db):
    # Given an enqueued job
    result = tasks.add.enqueue(2, 3)
    # When a worker runs it
    attempt = claim_and_run()
    # Then it is SUCCESSFUL with its return value, and no longer leased
    assert attempt.outcome == TaskResultStatus.SUCCESSFUL
    job = row(result)
    assert (job.status, job.return_value, job.errors) == (JobStatus.SUCCESSFUL, 5, [])
    assert job.finished_at is not None and job.lease_expires_at is None
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 5)


def test_non_json_return_value_fails_the_attempt_with_a_clear_error(transactional_db):
    # Given a task returning an object that JSON cannot hold
    result = tasks.returns_object.enqueue()
    # When it runs
    claim_and_run()
    # Then the job FAILED, saying the return value is not JSON
    job = row(result)
    assert job.status == JobStatus.FAILED and job.return_value is None
    [error] = job.errors
    assert error["exception_class_path"] == "builtins.TypeError"
    assert "return value" in error["traceback"] and "not JSON" in error["traceback"]


def test_failing_job_is_retried_until_max_attempts_then_failed(transactional_db):
    # Given a task that always fails, with max_attempts=3 and no backoff
    result = tasks.always_fails.enqueue("boom")
    # When the first two attempts fail, then it goes back to READY each time
    for attempt in (1, 2):
        assert claim_and_run().outcome == TaskResultStatus.READY
        job = row(result)
        assert (job.status, job.attempts, len(job.errors)) == (JobStatus.READY, attempt, attempt)
        assert job.claimed_by is None
    # When the third attempt fails, then it is FAILED for good
    assert claim_and_run().outcome == TaskResultStatus.FAILED
    job = row(result)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 3)
    assert [e["attempt"] for e in job.errors] == [1, 2, 3]
    for error in job.errors:
        assert error["exception_class_path"] == "builtins.ValueError"
        assert "Traceback" in error["traceback"] and "ValueError: boom" in error["traceback"]
    assert backend().broker.claim("worker-a", [], 1, timezone.now()) == []


def test_dont_retry_on_fails_at_once(transactional_db):
    # Given a task with 5 attempts that does not retry KeyError
    result = tasks.raises_key_error.enqueue()
    # When its first attempt raises KeyError
    claim_and_run()
    # Then it is FAILED after that one attempt
    job = row(result)
    assert (job.status, job.attempts, len(job.errors)) == (JobStatus.FAILED, 1, 1)
    assert job.errors[0]["exception_class_path"] == "builtins.KeyError"


@pytest.mark.parametrize(
    ("retry_on", "status"),
    [([TypeError], JobStatus.FAILED), ([ValueError], JobStatus.READY)],
)
def test_retry_on_retries_only_the_listed_exceptions(transactional_db, retry_on, status):
    # Given a task raising ValueError, retrying only on the listed exceptions
    result = tasks.always_fails.using(retry_on=retry_on).enqueue()
    # When the first attempt fails
    claim_and_run()
    # Then it is retried only when ValueError is listed
    assert row(result).status == status


def test_backoff_defers_the_retry(transactional_db):
    # Given a failing task with a 60 s backoff and no jitter
    result = tasks.always_fails.using(retry_backoff=60, retry_jitter=False).enqueue()
    # When its first attempt fails
    before = timezone.now()
    claim_and_run()
    # Then it waits 60 s before the next attempt, and is not claimable now
    job = row(result)
    assert job.status == JobStatus.READY
    assert job.run_after >= before + timedelta(seconds=60)
    assert backend().broker.claim("worker-a", [], 1, timezone.now()) == []


def test_context_attempt_is_the_job_attempt_number(transactional_db):
    # Given a task that fails on attempt 1 and returns its attempt number
    result = tasks.fails_until.enqueue(succeed_on=2)
    # When it runs twice
    claim_and_run()
    claim_and_run()
    # Then the context saw attempt 2, the row's attempt count
    job = row(result)
    assert (job.status, job.return_value, job.attempts) == (JobStatus.SUCCESSFUL, 2, 2)
    assert job.errors[0]["attempt"] == 1


def test_report_progress_is_stored(transactional_db):
    # Given a task reporting progress in 4 steps
    result = tasks.progress.enqueue(steps=4)
    # When it runs
    claim_and_run()
    # Then the last report is on the row
    assert row(result).progress == {"current": 4, "total": 4, "message": ""}


def test_task_started_and_finished_signals_are_sent(transactional_db):
    # Given receivers for Django's task signals
    seen = []

    def on_started(sender, task_result, **kwargs):
        seen.append(("started", task_result.id, task_result.status))

    def on_finished(sender, task_result, **kwargs):
        seen.append(("finished", task_result.id, task_result.status))

    task_started.connect(on_started)
    task_finished.connect(on_finished)
    try:
        # When a succeeding and a failing job run
        ok = tasks.add.enqueue(1, 1)
        claim_and_run()
        bad = tasks.raises_key_error.enqueue()
        claim_and_run()
    finally:
        task_started.disconnect(on_started)
        task_finished.disconnect(on_finished)
    # Then each was started RUNNING and finished with its outcome
    assert seen == [
        ("started", ok.id, TaskResultStatus.RUNNING),
        ("finished", ok.id, TaskResultStatus.SUCCESSFUL),
        ("started", bad.id, TaskResultStatus.RUNNING),
        ("finished", bad.id, TaskResultStatus.FAILED),
    ]


@pytest.mark.parametrize(
    ("task", "args", "b_outcome"),
    [
        (tasks.add, (1, 2), TaskResultStatus.SUCCESSFUL),
        (tasks.always_fails, ("late",), TaskResultStatus.READY),
    ],
)
def test_worker_that_lost_its_lease_cannot_write_the_outcome(
    transactional_db, task, args, b_outcome
):
    # Given a job claimed by A, whose lease expired and which B claimed after the rescue
    result = task.using(max_attempts=3).enqueue(*args)
    job_for_a = claim("worker-a")
    expire(result)
    assert leases.rescue_expired(backend().database, timezone.now()) == 1
    job_for_b = claim("worker-b")
    # When A finally finishes its attempt
    attempt_a = run(job_for_a, "worker-a")
    # Then A's outcome is dropped: the job is still B's, untouched
    assert attempt_a.outcome == "LOST"
    job = row(result)
    assert (job.status, job.claimed_by, job.attempts) == (JobStatus.RUNNING, "worker-b", 2)
    assert job.return_value is None
    assert [e["exception_class_path"] for e in job.errors] == [WORKER_LOST]
    # When B finishes, then its outcome is written
    assert run(job_for_b, "worker-b").outcome == b_outcome
    job = row(result)
    assert job.status == b_outcome
    assert job.return_value == (3 if b_outcome == TaskResultStatus.SUCCESSFUL else None)


def test_rescue_requeues_expired_job_with_attempts_left(transactional_db):
    # Given a running job (1 of 3 attempts) whose lease ran out
    result = tasks.add.using(max_attempts=3).enqueue(1, 1)
    claim("worker-a")
    expire(result)
    # When a rescuer runs
    assert leases.rescue_expired(backend().database, timezone.now()) == 1
    # Then it is READY again, with a WorkerLost error for attempt 1
    job = row(result)
    assert (job.status, job.claimed_by, job.lease_expires_at) == (JobStatus.READY, None, None)
    [error] = job.errors
    assert error["exception_class_path"] == WORKER_LOST
    assert (error["attempt"], error["worker_id"]) == (1, "worker-a")
    assert "worker-a" in error["traceback"]


def test_rescue_fails_expired_job_out_of_attempts(transactional_db):
    # Given a running job on its last attempt whose lease ran out
    result = tasks.add.using(max_attempts=1).enqueue(1, 1)
    claim("worker-a")
    expire(result)
    # When a rescuer runs
    leases.rescue_expired(backend().database, timezone.now())
    # Then the job is FAILED with the WorkerLost error
    job = row(result)
    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert [e["exception_class_path"] for e in job.errors] == [WORKER_LOST]


def test_racing_rescuers_rescue_once(transactional_db):
    # Given a running job whose lease ran out
    result = tasks.add.using(max_attempts=3).enqueue(1, 1)
    claim("worker-a")
    expire(result)
    now = timezone.now()
    # When two rescuers run on the same expired job
    first = leases.rescue_expired(backend().database, now)
    second = leases.rescue_expired(backend().database, now)
    # Then only one rescued it, and one error was recorded
    assert (first, second) == (1, 0)
    assert len(row(result).errors) == 1


def test_renew_extends_only_listed_jobs_of_that_worker(transactional_db):
    # Given a registered worker running two jobs, and a job of another worker
    database = backend().database
    worker_id = registration.register(database, "default", [], 1, 2)
    for i in range(3):
        tasks.add.enqueue(i, i)
    renewed, not_listed = claim(worker_id), claim(worker_id)
    foreign = claim("worker-b")
    registered_at = Worker.objects.get(pk=worker_id).last_heartbeat_at
    # When it renews the leases of its first job and of the foreign one, for an hour
    lease = timedelta(hours=1)
    registered = leases.renew(database, worker_id, timezone.now(), lease, [renewed.pk, foreign.pk])
    # Then only its own listed job got a new lease, and its heartbeat is recorded
    assert registered is True
    new_lease = Job.objects.get(pk=renewed.pk).lease_expires_at
    assert new_lease > renewed.lease_expires_at + timedelta(minutes=50)
    for other in (not_listed, foreign):
        assert Job.objects.get(pk=other.pk).lease_expires_at == other.lease_expires_at
    assert Worker.objects.get(pk=worker_id).last_heartbeat_at >= registered_at
