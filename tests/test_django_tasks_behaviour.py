"""What users of ``django.tasks`` rely on, as Django's own backends behave.

Found by reading Django's ``tests/tasks/`` and a peer database backend's tests against this
backend: the exception raised for bad arguments, BaseException tasks, the failure log line,
``run_after`` in the past, the check for the app, arguments bound at enqueue.
"""

import logging
import traceback
from datetime import timedelta
from io import StringIO

import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import (
    TASKS_MODULE,
    InvalidTask,
    TaskResultStatus,
    task_backends,
    task_started,
)
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import record, run_attempt
from django_jobs.worker.pool import Pool
from django_jobs.workflows import chain
from tests import tasks
from tests.conftest import wait_for

BASE_EXCEPTIONS = {
    "SystemExit": "builtins.SystemExit",
    "exit": "builtins.SystemExit",
    "KeyboardInterrupt": "builtins.KeyboardInterrupt",
    "GeneratorExit": "builtins.GeneratorExit",
    "Abort": "tests.tasks.Abort",
}


def call(task, args, kwargs):
    return task.func(*args, **kwargs)


def claim_and_run(backend_alias="default"):
    backend = task_backends[backend_alias]
    [job] = backend.broker.claim("worker-a", [], 1, timezone.now())
    return run_attempt(Attempt(job, "worker-a", backend), call=call)


# --- non-JSON values --------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "kwargs"), [((object(),), {}), ((), {"when": timezone.now()}), (({1: "a"},), {})]
)
def test_non_json_arguments_raise_a_type_error_at_enqueue(args, kwargs):
    # When a task is enqueued with arguments JSON cannot hold
    with pytest.raises(TypeError, match="not JSON|JSON keys") as raised:
        tasks.echo.enqueue(*args, **kwargs)
    # Then the error is a TypeError, as with Django's backends, and still an InvalidTask
    assert isinstance(raised.value, InvalidTask)
    assert not Job.objects.exists()


def test_non_json_return_value_records_a_type_error(transactional_db):
    # Given a task returning an object JSON cannot hold
    result = tasks.returns_object.enqueue()
    # When it runs
    claim_and_run()
    # Then the failure's exception class is TypeError, as Django's backends record it
    [error] = Job.objects.get(pk=result.id).errors
    assert error["exception_class_path"] == "builtins.TypeError"
    assert "return value" in error["traceback"] and "not JSON" in error["traceback"]


# --- BaseException ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(BASE_EXCEPTIONS))
def test_task_raising_a_base_exception_fails_with_its_class_and_traceback(transactional_db, kind):
    # Given a task that raises SystemExit, KeyboardInterrupt, GeneratorExit, exit() or a
    # BaseException of its own (with attempts to spare)
    result = tasks.raises_base.enqueue(kind)
    # When it runs
    attempt = claim_and_run()
    # Then the job FAILED at once (not retried) with that class and the task's traceback
    assert attempt.outcome == TaskResultStatus.FAILED
    job = Job.objects.get(pk=result.id)
    assert (job.status, job.attempts, job.lease_expires_at) == (JobStatus.FAILED, 1, None)
    [error] = job.errors
    assert error["exception_class_path"] == BASE_EXCEPTIONS[kind]
    assert "_raise_base" in error["traceback"]
    result.refresh()
    assert result.errors[0].exception_class_path == BASE_EXCEPTIONS[kind]


# --- Django's failure log line ------------------------------------------------------------------
def test_django_failure_log_line_carries_the_exception_and_traceback(transactional_db, caplog):
    # Given a task that fails for good on its first attempt
    result = tasks.raises_key_error.enqueue()
    # When it runs
    with caplog.at_level(logging.INFO, logger=TASKS_MODULE):
        claim_and_run()
    # Then Django's own "Task … state=FAILED" line (the backport's logger on 5.2) carries the
    # task's exception (exc_info)
    [line] = [r for r in caplog.records if r.name == TASKS_MODULE and r.levelno >= logging.ERROR]
    assert result.id in line.getMessage() and "FAILED" in line.getMessage()
    assert line.exc_info is not None and line.exc_info[0] is KeyError
    frames = traceback.extract_tb(line.exc_info[2])
    assert frames[-1].name == "raises_key_error", frames


def test_django_log_line_of_a_success_has_no_exception(transactional_db, caplog):
    # Given a task that succeeds
    tasks.add.enqueue(1, 2)
    # When it runs
    with caplog.at_level(logging.INFO, logger=TASKS_MODULE):
        claim_and_run()
    # Then Django's finished line carries no exception
    [line] = [r for r in caplog.records if "SUCCESSFUL" in r.getMessage()]
    assert line.exc_info is None


# --- run_after in the past ---------------------------------------------------------------------
@pytest.mark.django_db
def test_run_after_in_the_past_is_kept_and_reported():
    # Given a run_after that already passed
    past = timezone.now() - timedelta(days=1)
    # When a task is enqueued with it
    result = tasks.add.using(run_after=past).enqueue(1, 2)
    # Then the row keeps it, the job is ready, and the result reports it
    job = Job.objects.get(pk=result.id)
    assert job.run_after == past
    assert Job.objects.ready(timezone.now()).filter(pk=job.pk).exists()
    assert result.task.run_after == past
    assert task_backends["default"].get_result(result.id).task.run_after == past


@pytest.mark.django_db
def test_job_enqueued_without_run_after_reports_none():
    # When a task is enqueued without run_after
    result = tasks.add.enqueue(1, 2)
    # Then its result, fresh or read back, has no run_after
    assert result.task.run_after is None
    assert task_backends["default"].get_result(result.id).task.run_after is None


@pytest.mark.parametrize("queues", [[], ["default"], ["default", "emails"]])
@pytest.mark.parametrize("task", [tasks.echo, tasks.five_per_second], ids=["plain", "limited"])
def test_overdue_jobs_of_equal_priority_run_earliest_run_after_first(
    transactional_db, backend_alias, queues, task
):
    # Given overdue jobs of one priority, enqueued in the opposite order of their run_after
    # (on every claim path: PostgreSQL, MariaDB, SQLite, the Redis broker; plain or gated)
    now = timezone.now()
    task = task.using(backend=backend_alias)
    late = task.using(run_after=now - timedelta(seconds=10)).enqueue(1)
    early = task.using(run_after=now - timedelta(minutes=5)).enqueue(2)
    plain = task.enqueue(3)  # its run_after is its enqueue time: the latest
    # When a worker claims them one by one (after its sweep, which looks for gated jobs)
    broker = task_backends[backend_alias].broker
    order = []
    for _ in range(3):
        broker.sweep(timezone.now())
        [job] = broker.claim("worker-a", queues, 1, timezone.now())
        order.append(str(job.pk))
    # Then the earliest run_after ran first
    assert order == [early.id, late.id, plain.id]


# --- INSTALLED_APPS ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_check_reports_jobs_backend_without_the_app_installed(settings):
    # Given settings that use JobsBackend but leave django_jobs out of INSTALLED_APPS
    installed = [app for app in settings.INSTALLED_APPS if app != "django_jobs"]
    with override_settings(INSTALLED_APPS=installed):
        # When the system checks run
        messages = [m for m in checks.run_checks() if m.id == "django_jobs.E022"]
    # Then one error per backend says so, with a hint
    assert len(messages) == len(settings.TASKS), messages
    assert "INSTALLED_APPS" in messages[0].msg and messages[0].hint
    # And with the app installed there is no such error
    assert not [m for m in checks.run_checks() if m.id == "django_jobs.E022"]


# --- arguments bound at enqueue -----------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("task", "args", "kwargs", "error"),
    [
        (tasks.add, (1, 2, 3), {}, "too many positional arguments"),
        (tasks.add, (1,), {}, "missing a required argument: 'b'"),
        (tasks.add, (1, 2), {"c": 3}, "unexpected keyword argument 'c'"),
        (tasks.fails_until, (), {"nope": 1}, "unexpected keyword argument 'nope'"),
    ],
)
def test_arguments_that_do_not_fit_the_signature_fail_at_enqueue(task, args, kwargs, error):
    # When a task is enqueued with arguments its function cannot take
    with pytest.raises(TypeError, match=error) as raised:
        task.enqueue(*args, **kwargs)
    # Then the TypeError names the task's signature (without the context it does not take
    # from the caller), and nothing is written
    assert task.module_path in str(raised.value)
    assert "context" not in str(raised.value)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_context_task_is_bound_without_its_context():
    # When a takes_context task is enqueued with the arguments after its context
    result = tasks.fails_until.enqueue(succeed_on=1)
    tasks.attempt_number.enqueue()
    # Then it is accepted
    assert Job.objects.filter(pk=result.id).exists()


@pytest.mark.django_db
def test_enqueue_many_binds_every_call_and_writes_nothing_on_a_bad_one():
    # When one of many calls does not fit its task's signature
    backend = task_backends["default"]
    calls = [(tasks.add, (1, 2), {}), (tasks.add, (3, 4), {}), (tasks.add, (5,), {})]
    # Then the bulk enqueue raises the TypeError and writes nothing
    with pytest.raises(TypeError, match=r"tests\.tasks\.add\(a, b\)"):
        backend.enqueue_many(calls)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_workflow_steps_are_bound_counting_the_fed_result():
    # Given a chain whose second step gets the first one's result as its first argument
    # When it is enqueued with fitting arguments, it is accepted
    chain(tasks.add.s(1, 2), tasks.add.s(10)).enqueue()
    # But a step that would get one argument too many is refused at enqueue
    with pytest.raises(TypeError, match="too many positional arguments"):
        chain(tasks.add.s(1, 2), tasks.add.s(10, 20)).enqueue()


@pytest.mark.django_db
def test_jobs_enqueue_command_reports_a_bad_call_in_one_line():
    # When an operator enqueues a task with too many arguments
    # Then the command fails with the signature, not a traceback
    with pytest.raises(CommandError, match=r"add\(a, b\).*too many positional"):
        call_command("jobs", "enqueue", "tests.tasks.add", "--args", "[1, 2, 3]", stdout=StringIO())


def test_job_is_failed_not_left_running_when_a_task_started_receiver_raises(transactional_db):
    # Given a claimed job, and a task_started receiver that raises (outside the task's code)
    result = tasks.add.enqueue(1, 2)
    backend = task_backends["default"]
    [job] = backend.broker.claim("worker-a", [], 1, timezone.now())

    def broken(sender, task_result, **kwargs):
        raise KeyboardInterrupt

    outcomes: list = []
    pool = Pool(1, on_done=lambda: None, on_outcome=outcomes.append)
    task_started.connect(broken)
    try:
        # When a worker's job thread runs it
        pool.submit(Attempt(job, "worker-a", backend))
        wait_for(lambda: outcomes, 10, message="the job thread to report an outcome")
    finally:
        task_started.disconnect(broken)
        pool.shutdown()
    # Then the job thread still reports an outcome, so the job ends FAILED instead of staying
    # RUNNING (its lease renewed) for as long as the worker lives
    assert pool.idle() is False and pool.free_slots() == 1
    record(outcomes[0])
    [error] = Job.objects.get(pk=result.id).errors
    assert error["exception_class_path"] == "builtins.KeyboardInterrupt"
    assert Job.objects.get(pk=result.id).status == JobStatus.FAILED
