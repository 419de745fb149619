"""Unique jobs: one job per key while it is held, under concurrency, in transactions, in bulk."""

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from django_jobs import DuplicateJob
from django_jobs.exceptions import InvalidTaskOptions
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import TaskResultStatus, task_backends
from tests import tasks
from tests.conftest import ROOT, worker_database_url

pytestmark = pytest.mark.django_db(transaction=True)


def backend():
    return task_backends["default"]


def finish(result, status=JobStatus.SUCCESSFUL):
    Job.objects.filter(pk=result.id).update(status=status, finished_at=timezone.now())


# --- keys ---------------------------------------------------------------------------------
def test_same_call_twice_returns_the_first_job():
    # Given a unique task enqueued once
    first = tasks.unique_add.enqueue(1, 2)
    # When the same call is enqueued again
    second = tasks.unique_add.enqueue(1, 2)
    # Then the second enqueue returns the first job and writes nothing
    assert second.id == first.id
    assert second.status == TaskResultStatus.READY
    assert Job.objects.count() == 1


def test_other_arguments_make_another_job():
    first = tasks.unique_add.enqueue(1, 2)
    other = tasks.unique_add.enqueue(2, 1)
    assert other.id != first.id
    assert Job.objects.count() == 2


def test_kwargs_order_does_not_change_the_key():
    first = tasks.unique_add.enqueue(a=1, b=2)
    assert tasks.unique_add.enqueue(b=2, a=1).id == first.id


def test_key_callable_picks_what_makes_calls_the_same():
    # Given a task keyed on its first argument only
    first = tasks.unique_per_user.enqueue(7, note="a")
    # When it is enqueued for the same user with another note, and for another user
    same_user = tasks.unique_per_user.enqueue(7, note="b")
    other_user = tasks.unique_per_user.enqueue(8, note="a")
    # Then only the other user gets a new job
    assert same_user.id == first.id
    assert other_user.id != first.id


def test_string_key_given_per_call_with_using():
    # Given two different calls sharing an explicit key
    first = tasks.unique_add.using(unique_key="nightly").enqueue(1, 2)
    second = tasks.unique_add.using(unique_key="nightly").enqueue(3, 4)
    # Then they are duplicates; without the key they are not
    assert second.id == first.id
    assert tasks.unique_add.enqueue(3, 4).id != first.id


def test_keys_are_per_task():
    # Given two unique tasks called with the same arguments
    a = tasks.unique_add.using(unique_key="k").enqueue(1, 2)
    b = tasks.unique_per_user.using(unique_key="k").enqueue(1)
    # Then each gets its job
    assert a.id != b.id


def test_plain_tasks_store_no_key():
    result = tasks.add.enqueue(1, 2)
    assert Job.objects.get(pk=result.id).unique_key is None


def test_on_duplicate_raise():
    # Given a unique task that raises on duplicates, enqueued once
    first = tasks.unique_or_raise.enqueue(1)
    # When enqueued again, then DuplicateJob carries the existing job's result
    with pytest.raises(DuplicateJob) as caught:
        tasks.unique_or_raise.enqueue(1)
    assert caught.value.result.id == first.id
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    "options",
    [
        {"unique_states": ("DONE",)},
        {"unique_states": ()},
        {"unique_for": -1},
        {"on_duplicate": "ignore"},
        {"unique_key": 42},
        {"cancel_grace": -1},
    ],
)
def test_invalid_unique_options_are_rejected(options):
    with pytest.raises(InvalidTaskOptions):
        tasks.unique_add.using(**options)


def test_key_callable_returning_a_non_string_fails_at_enqueue():
    with pytest.raises(InvalidTaskOptions, match="not a str"):
        tasks.unique_add.using(unique_key=lambda args, kwargs: args[0]).enqueue(1, 2)


# --- what holds a key ---------------------------------------------------------------------
@pytest.mark.parametrize("status", [JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELLED])
def test_a_finished_job_releases_its_key(status):
    # Given a unique job that finished
    first = tasks.unique_add.enqueue(1, 2)
    finish(first, status)
    # When the same call is enqueued
    second = tasks.unique_add.enqueue(1, 2)
    # Then it is a new job, and the old row no longer holds the key
    assert second.id != first.id
    assert Job.objects.get(pk=first.id).unique_key is None
    assert Job.objects.get(pk=second.id).unique_key is not None


def test_a_running_job_holds_its_key():
    first = tasks.unique_add.enqueue(1, 2)
    Job.objects.filter(pk=first.id).update(status=JobStatus.RUNNING)
    assert tasks.unique_add.enqueue(1, 2).id == first.id


def test_unique_states_ready_only_lets_a_new_job_in_once_the_first_runs():
    first = tasks.unique_while_ready.enqueue(1)
    assert tasks.unique_while_ready.enqueue(1).id == first.id
    Job.objects.filter(pk=first.id).update(status=JobStatus.RUNNING)
    assert tasks.unique_while_ready.enqueue(1).id != first.id


def test_unique_for_holds_the_key_after_the_job_finished():
    # Given a job unique for a minute, finished successfully
    first = tasks.unique_for_a_minute.enqueue(1)
    Job.objects.filter(pk=first.id).update(
        status=JobStatus.SUCCESSFUL, finished_at=timezone.now(), return_value=1
    )
    # When the same call comes within the minute
    again = tasks.unique_for_a_minute.enqueue(1)
    # Then it gets the finished job's result
    assert again.id == first.id
    assert (again.status, again.return_value) == (TaskResultStatus.SUCCESSFUL, 1)


def test_unique_for_window_over_releases_the_key():
    first = tasks.unique_for_a_minute.enqueue(1)
    later = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(pk=first.id).update(status=JobStatus.SUCCESSFUL, unique_until=later)
    assert tasks.unique_for_a_minute.enqueue(1).id != first.id


def test_unique_for_window_starts_at_the_first_enqueue():
    before = timezone.now()
    result = tasks.unique_for_a_minute.enqueue(1)
    until = Job.objects.get(pk=result.id).unique_until
    assert before + timedelta(seconds=59) < until <= timezone.now() + timedelta(seconds=60)


def test_unique_for_accepts_a_timedelta():
    task = tasks.unique_add.using(unique_for=timedelta(minutes=2))
    assert task.unique_for == 120.0 and task.unique


# --- transactions -------------------------------------------------------------------------
def test_duplicate_inside_the_callers_transaction_keeps_it_usable():
    first = tasks.unique_add.enqueue(1, 2)
    with transaction.atomic():
        # When a duplicate is enqueued inside a transaction
        again = tasks.unique_add.enqueue(1, 2)
        # Then the transaction goes on (the failed insert was in a savepoint)
        fresh = tasks.add.enqueue(5, 5)
        assert Job.objects.count() == 2
    assert again.id == first.id
    assert Job.objects.filter(pk=fresh.id).exists()


def test_rolled_back_enqueue_leaves_the_key_free():
    with transaction.atomic():
        tasks.unique_add.enqueue(1, 2)
        transaction.set_rollback(True)
    assert Job.objects.count() == 0
    tasks.unique_add.enqueue(1, 2)
    assert Job.objects.count() == 1


# --- bulk ---------------------------------------------------------------------------------
def test_enqueue_many_returns_the_existing_job_in_place_of_a_duplicate():
    # Given a unique job already queued
    existing = tasks.unique_add.enqueue(1, 2)
    # When a batch holds it again, a new unique call twice, and a plain call
    results = backend().enqueue_many(
        [
            (tasks.unique_add, (1, 2), {}),
            (tasks.unique_add, (3, 4), {}),
            (tasks.add, (1, 1), {}),
            (tasks.unique_add, (3, 4), {}),
        ]
    )
    # Then one result per call, duplicates pointing at the job that holds the key
    assert len(results) == 4
    assert results[0].id == existing.id
    assert results[3].id == results[1].id
    assert Job.objects.count() == 3


def test_enqueue_many_with_raise_writes_nothing():
    tasks.unique_or_raise.enqueue(1)
    with pytest.raises(DuplicateJob):
        backend().enqueue_many([(tasks.add, (1, 1), {}), (tasks.unique_or_raise, (1,), {})])
    assert Job.objects.count() == 1


# --- races --------------------------------------------------------------------------------
def test_concurrent_enqueues_from_threads_make_one_job():
    # Given eight threads ready to enqueue the same unique call at once
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    ids, errors = [], []

    def enqueue():
        try:
            barrier.wait(timeout=30)
            ids.append(tasks.unique_add.enqueue(40, 2).id)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enqueue) for _ in range(threads_count)]
    # When they all enqueue
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Then exactly one row exists and every thread got its id
    assert errors == []
    assert Job.objects.count() == 1
    assert set(ids) == {str(Job.objects.get().pk)}


RACE_SCRIPT = """
import json, os, time
from pathlib import Path
from tests import tasks
barrier = Path(os.environ["BARRIER"])
Path(f"{barrier}.{os.environ['ME']}").touch()
deadline = time.monotonic() + 60
while len(list(barrier.parent.glob(barrier.name + ".*"))) < 2 and time.monotonic() < deadline:
    time.sleep(0.005)
print(json.dumps([tasks.unique_add.enqueue(i, 0).id for i in range(int(os.environ["KEYS"]))]))
"""


@pytest.mark.processes
def test_concurrent_enqueues_from_two_processes_make_one_job_per_key(tmp_path):
    # Given two processes that enqueue the same 60 unique calls, released together
    keys = 60
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "KEYS": str(keys)}
    env.pop("TEST_DATABASE_NAME", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", RACE_SCRIPT],
            cwd=ROOT,
            env={**env, "BARRIER": str(tmp_path / "barrier"), "ME": str(me)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me in range(2)
    ]
    # When both have run
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    # Then each key has exactly one job, and both processes were handed the same one
    assert first == second
    assert Job.objects.count() == keys == len(set(first))


def test_the_unique_index_is_in_the_database():
    # Given a job holding a key
    first = tasks.unique_add.enqueue(1, 2)
    key = Job.objects.get(pk=first.id).unique_key
    now = timezone.now()
    # When another row with the same key is written behind the backend's back
    # Then the database itself refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(task_path="x.y", run_after=now, enqueued_at=now, unique_key=key)
