"""JobsBackend: enqueue writes a Job row, results read it back as Django's TaskResult."""

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from django_jobs.backend import JobsBackend
from django_jobs.exceptions import InvalidJobArguments
from django_jobs.jobs.status import JobStatus, error_entry
from django_jobs.models import Job
from django_jobs.tasks_api import (
    InvalidTask,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
)
from tests import tasks

LEASE = timedelta(seconds=60)


def claim(result: TaskResult, worker_id: str = "worker-1") -> datetime:
    """Claim the job behind ``result`` for ``worker_id`` the way a worker does; return now."""
    now = timezone.now()
    assert Job.objects.filter(pk=result.id).claim(worker_id, now, LEASE) == 1
    return now


# --- the backend itself -----------------------------------------------------------------------
def test_backend_declares_every_optional_feature():
    # Given the configured default backend
    backend = task_backends["default"]
    # Then it is ours and supports defer, async tasks, results and priorities
    assert isinstance(backend, JobsBackend)
    assert backend.supports_defer is True
    assert backend.supports_async_task is True
    assert backend.supports_get_result is True
    assert backend.supports_priority is True


# --- enqueue ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_enqueue_returns_ready_result_whose_id_is_the_job_pk():
    # When a task is enqueued
    result = tasks.add.enqueue(2, 3)
    # Then a READY TaskResult comes back, identified by the new row's primary key
    job = Job.objects.get()
    assert isinstance(result, TaskResult)
    assert result.id == str(job.pk)
    assert result.status == TaskResultStatus.READY
    assert result.args == [2, 3]
    assert result.kwargs == {}
    assert result.backend == "default"
    assert result.task.module_path == "tests.tasks.add"
    assert result.enqueued_at == job.enqueued_at
    assert (result.started_at, result.finished_at, result.last_attempted_at) == (None, None, None)
    assert result.errors == []
    assert result.worker_ids == []
    assert not result.is_finished


@pytest.mark.django_db
def test_enqueue_writes_every_field_of_the_job_row():
    # Given a task with non-default options
    before = timezone.now()
    task = tasks.always_fails.using(priority=7, queue_name="reports", timeout=9)
    # When it is enqueued
    result = task.enqueue(message={"k": [1, 2]})
    # Then the row carries the call and the options
    job = Job.objects.get(pk=result.id)
    assert job.backend == "default"
    assert job.queue_name == "reports"
    assert job.priority == 7
    assert job.task_path == "tests.tasks.always_fails"
    assert job.args == []
    assert job.kwargs == {"message": {"k": [1, 2]}}
    assert job.status == JobStatus.READY
    assert before <= job.enqueued_at <= timezone.now()
    assert job.run_after == job.enqueued_at
    assert job.max_attempts == 3
    assert job.timeout == 9
    assert job.options == {"retry_backoff": 0}
    assert job.attempts == 0
    assert (job.started_at, job.finished_at, job.return_value) == (None, None, None)
    assert job.errors == [] and job.worker_ids == []


@pytest.mark.django_db
def test_enqueue_uses_default_max_attempts_from_options(settings):
    # Given a backend whose default_max_attempts is 4
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": [],
            "OPTIONS": {"default_max_attempts": 4},
        }
    }
    # When a task without its own max_attempts is enqueued
    result = tasks.add.enqueue(1, 1)
    # Then the row gets the backend default, while a task's own value still wins
    assert Job.objects.get(pk=result.id).max_attempts == 4
    own = tasks.always_fails.enqueue()
    assert Job.objects.get(pk=own.id).max_attempts == 3


@pytest.mark.django_db
def test_enqueue_with_run_after_in_the_future_defers_the_job():
    # Given a run_after five minutes away
    later = timezone.now() + timedelta(minutes=5)
    # When the task is enqueued with it
    result = tasks.add.using(run_after=later).enqueue(1, 2)
    # Then the row is deferred to exactly that time and the result says so
    job = Job.objects.get(pk=result.id)
    assert job.run_after == later
    assert result.task.run_after == later
    assert not Job.objects.ready(timezone.now()).exists()
    assert Job.objects.ready(later).exists()
    assert task_backends["default"].get_result(result.id).task.run_after == later


@pytest.mark.django_db
def test_enqueue_with_run_after_in_the_past_is_ready_now():
    # When a task is enqueued with a run_after that already passed
    past = timezone.now() - timedelta(days=1)
    result = tasks.add.using(run_after=past).enqueue(1, 2)
    # Then it is ready now, its run_after kept as given (it orders overdue jobs)
    job = Job.objects.get(pk=result.id)
    assert job.run_after == past
    assert Job.objects.ready(timezone.now()).filter(pk=job.pk).exists()


@pytest.mark.django_db
def test_enqueue_sends_task_enqueued_with_the_result():
    # Given a receiver of Django's task_enqueued signal
    received = []

    def receiver(sender, task_result, **kwargs):
        received.append((sender, task_result))

    task_enqueued.connect(receiver)
    try:
        # When a task is enqueued
        result = tasks.add.enqueue(4, 5)
    finally:
        task_enqueued.disconnect(receiver)
    # Then the receiver got the backend class and the very TaskResult returned
    assert len(received) == 1
    sender, task_result = received[0]
    assert sender is JobsBackend
    assert task_result.id == result.id
    assert task_result.status == TaskResultStatus.READY
    assert task_result.args == [4, 5]


@pytest.mark.django_db
def test_enqueue_accepts_tuples_and_stores_them_as_lists():
    # When tuples are passed, top level and nested
    result = tasks.echo.enqueue((1, 2), [3, (4, 5)], opts=("a", "b"))
    # Then they are stored (and read back) as JSON lists
    job = Job.objects.get(pk=result.id)
    assert job.args == [[1, 2], [3, [4, 5]]]
    assert job.kwargs == {"opts": ["a", "b"]}
    assert result.args == [[1, 2], [3, [4, 5]]]
    assert result.kwargs == {"opts": ["a", "b"]}


@pytest.mark.django_db
def test_enqueue_accepts_plain_json_values():
    # When every kind of JSON value is passed
    value = {"s": "é", "i": -3, "f": 1.5, "b": True, "n": None, "l": [], "d": {}}
    result = tasks.echo.enqueue(value, big=2**40)
    # Then they round-trip unchanged
    job = Job.objects.get(pk=result.id)
    assert job.args == [value]
    assert job.kwargs == {"big": 2**40}


BAD_ARGUMENTS = [
    pytest.param((datetime(2024, 1, 1, tzinfo=UTC),), {}, "args[0]", id="datetime-arg"),
    pytest.param((), {"when": datetime(2024, 1, 1, tzinfo=UTC)}, "kwargs['when']", id="dt-kwarg"),
    pytest.param((1, {"x": [0, 1, object()]}), {}, "args[1]['x'][2]", id="nested-object"),
    pytest.param((object(),), {}, "args[0]", id="object"),
    pytest.param(({1, 2},), {}, "args[0]", id="set"),
    pytest.param((b"raw",), {}, "args[0]", id="bytes"),
    pytest.param(({1: "one"},), {}, "args[0] has key 1", id="int-key"),
    pytest.param((), {"m": {("a",): 1}}, "kwargs['m'] has key ('a',)", id="tuple-key"),
    pytest.param((math.nan,), {}, "args[0]", id="nan"),
    pytest.param((), {"x": [math.inf]}, "kwargs['x'][0]", id="inf"),
    pytest.param((-math.inf,), {}, "args[0]", id="minus-inf"),
    pytest.param((uuid.uuid4(),), {}, "args[0]", id="uuid"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "kwargs", "where"), BAD_ARGUMENTS)
def test_enqueue_rejects_non_json_arguments_naming_them_and_writes_nothing(args, kwargs, where):
    # When a task is enqueued with a value that is not plain JSON
    with pytest.raises(InvalidJobArguments) as excinfo:
        tasks.echo.enqueue(*args, **kwargs)
    # Then the error is an InvalidTask naming where the bad value is, and no row was written
    assert isinstance(excinfo.value, InvalidTask)
    assert where in str(excinfo.value)
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_enqueue_error_names_the_type_of_a_bad_object():
    # When an arbitrary object is passed
    with pytest.raises(InvalidJobArguments, match=r"args\[0\] = .* datetime\.datetime"):
        tasks.echo.enqueue(datetime(2024, 1, 1, tzinfo=UTC))
    # Then the message names its type (checked above) and nothing was stored
    assert Job.objects.count() == 0


# --- transactional enqueue --------------------------------------------------------------------
class Rollback(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_a_rolled_back_transaction_leaves_no_job():
    # Given a transaction that enqueues a job and then fails
    with pytest.raises(Rollback), transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        assert Job.objects.filter(pk=result.id).exists()
        raise Rollback
    # Then the job is gone with it
    assert Job.objects.count() == 0
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(result.id)


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_a_committed_transaction_keeps_the_job():
    # When a job is enqueued in a transaction that commits
    with transaction.atomic():
        result = tasks.add.enqueue(1, 2)
    # Then the row exists, ready to run
    job = Job.objects.get()
    assert str(job.pk) == result.id
    assert job.status == JobStatus.READY


# --- async API --------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_aenqueue_and_aget_result_round_trip():
    # When an async caller enqueues a task and reads its result back
    async def enqueue_and_read():
        enqueued = await tasks.async_add.aenqueue(3, 4)
        fetched = await tasks.async_add.aget_result(enqueued.id)
        return enqueued, fetched

    enqueued, fetched = async_to_sync(enqueue_and_read)()
    # Then the job row was written and both results describe it
    job = Job.objects.get()
    assert enqueued.id == fetched.id == str(job.pk)
    assert job.task_path == "tests.tasks.async_add"
    assert job.args == [3, 4]
    assert fetched.status == TaskResultStatus.READY
    assert fetched.args == [3, 4]


@pytest.mark.django_db(transaction=True)
def test_arefresh_sees_the_outcome():
    # Given an enqueued job that then succeeds
    result = tasks.add.enqueue(1, 2)
    claim(result)
    Job.objects.filter(pk=result.id).held_by("worker-1").mark_succeeded(timezone.now(), 3)
    # When the result is refreshed from async code
    async_to_sync(result.arefresh)()
    # Then it shows the outcome
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3


# --- get_result -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_get_result_of_a_succeeded_job_has_its_return_value():
    # Given a job claimed by a worker and marked succeeded
    result = tasks.add.enqueue(2, 3)
    started = claim(result, "worker-1")
    finished = timezone.now()
    assert Job.objects.filter(pk=result.id).held_by("worker-1", 1).mark_succeeded(finished, 5)
    # When its result is fetched by id
    fetched = task_backends["default"].get_result(result.id)
    # Then it carries the outcome
    assert fetched.id == result.id
    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.is_finished
    assert fetched.return_value == 5
    assert fetched.started_at == started
    assert fetched.last_attempted_at == started
    assert fetched.finished_at == finished
    assert fetched.worker_ids == ["worker-1"]
    assert fetched.attempts == 1
    assert fetched.task.module_path == "tests.tasks.add"
    assert fetched.args == [2, 3]
    # And the task's own get_result agrees
    assert tasks.add.get_result(result.id).return_value == 5


@pytest.mark.django_db
def test_get_result_returns_structured_return_values():
    # Given a job whose return value is a nested JSON document
    result = tasks.echo.enqueue(1, k="v")
    claim(result)
    value = {"args": [1], "kwargs": {"k": "v"}, "none": None}
    Job.objects.filter(pk=result.id).held_by("worker-1").mark_succeeded(timezone.now(), value)
    # When the result is fetched
    fetched = task_backends["default"].get_result(result.id)
    # Then the document comes back unchanged
    assert fetched.return_value == value


@pytest.mark.django_db
def test_get_result_of_a_running_job_is_running():
    # Given a claimed job
    result = tasks.add.enqueue(1, 1)
    claim(result, "worker-9")
    # When its result is fetched
    fetched = task_backends["default"].get_result(result.id)
    # Then it is RUNNING, with no return value yet
    assert fetched.status == TaskResultStatus.RUNNING
    assert fetched.worker_ids == ["worker-9"]
    with pytest.raises(ValueError, match="not finished"):
        fetched.return_value  # noqa: B018


@pytest.mark.django_db
def test_get_result_of_a_failed_job_lists_its_errors_as_task_errors():
    # Given a job that failed once, was retried and then failed for good
    result = tasks.always_fails.enqueue()
    claim(result, "worker-1")
    first = error_entry("builtins.ValueError", "Traceback: first", 1, "worker-1")
    later = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(pk=result.id).held_by("worker-1", 1).retry_later(later, first)
    claim(result, "worker-2")
    second = error_entry("builtins.KeyError", "Traceback: second", 2, "worker-2")
    Job.objects.filter(pk=result.id).held_by("worker-2", 2).mark_failed(timezone.now(), second)
    # When its result is fetched
    fetched = task_backends["default"].get_result(result.id)
    # Then it is FAILED with one TaskError per failed attempt, in order
    assert fetched.status == TaskResultStatus.FAILED
    assert fetched.errors == [
        TaskError(exception_class_path="builtins.ValueError", traceback="Traceback: first"),
        TaskError(exception_class_path="builtins.KeyError", traceback="Traceback: second"),
    ]
    assert fetched.errors[1].exception_class is KeyError
    assert fetched.worker_ids == ["worker-1", "worker-2"]
    assert fetched.attempts == 2
    with pytest.raises(ValueError, match="failed"):
        fetched.return_value  # noqa: B018


@pytest.mark.django_db
def test_cancelled_job_appears_as_failed():
    # Given a cancelled job
    result = tasks.add.enqueue(1, 2)
    assert Job.objects.filter(pk=result.id).cancel(timezone.now()) == 1
    assert Job.objects.get(pk=result.id).status == JobStatus.CANCELLED
    # When its result is fetched
    fetched = task_backends["default"].get_result(result.id)
    # Then Django sees it as FAILED and finished
    assert fetched.status == TaskResultStatus.FAILED
    assert fetched.is_finished
    assert fetched.finished_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "result_id",
    [str(uuid.uuid4()), "not-a-uuid", "", "1", "' OR 1=1 --"],
    ids=["unknown", "malformed", "empty", "integer", "sql"],
)
def test_get_result_of_a_missing_or_malformed_id_raises_does_not_exist(result_id):
    # Given an existing job, to show the lookup does not fall back to it
    tasks.add.enqueue(1, 2)
    # When a result is asked for an id that is not a job's
    # Then Django's TaskResultDoesNotExist is raised
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(result_id)


@pytest.mark.django_db
def test_get_result_ignores_jobs_of_another_backend():
    # Given a job row written for another backend alias
    result = tasks.add.enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(backend="elsewhere")
    # When the default backend looks it up
    # Then it is not found there
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(result.id)


@pytest.mark.django_db
def test_refresh_picks_up_the_outcome():
    # Given a result held by the caller while a worker finishes the job
    result = tasks.add.enqueue(20, 22)
    claim(result)
    Job.objects.filter(pk=result.id).held_by("worker-1").mark_succeeded(timezone.now(), 42)
    assert result.status == TaskResultStatus.READY
    # When the caller refreshes it
    result.refresh()
    # Then it shows the outcome
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert result.worker_ids == ["worker-1"]
    assert result.finished_at is not None


@pytest.mark.django_db
def test_refresh_of_a_deleted_job_raises_does_not_exist():
    # Given a result whose row was purged
    result = tasks.add.enqueue(1, 2)
    Job.objects.all().delete()
    # When it is refreshed
    # Then the caller learns the result no longer exists
    with pytest.raises(TaskResultDoesNotExist):
        result.refresh()
