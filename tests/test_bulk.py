"""Bulk enqueue (``enqueue_many``) and the single-row fast INSERT."""

import pytest
from django.db import transaction

from django_jobs.exceptions import InvalidJobArguments
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import task_backends
from tests import tasks


def backend():
    return task_backends["default"]


def test_enqueue_many_writes_every_call_with_its_fields(db):
    # Given calls of two tasks, one deferred-free, one with options
    calls = [(tasks.add, (i, i), {}) for i in range(50)]
    echo = tasks.echo.using(priority=7, queue_name="reports")
    calls.append((echo, ("x",), {"k": [1, {"a": None}]}))
    # When they are enqueued in bulk
    results = backend().enqueue_many(calls)
    # Then each has its row, in order, with the values a single enqueue would store
    assert len(results) == 51
    rows = {str(job.pk): job for job in Job.objects.all()}
    assert set(rows) == {r.id for r in results}
    first, last = rows[results[0].id], rows[results[-1].id]
    assert (first.task_path, first.args, first.kwargs, first.status) == (
        "tests.tasks.add",
        [0, 0],
        {},
        JobStatus.READY,
    )
    assert (last.priority, last.queue_name, last.kwargs) == (7, "reports", {"k": [1, {"a": None}]})
    assert (last.errors, last.worker_ids, last.return_value) == ([], [], None)
    assert results[-1].status == "READY"


def test_enqueue_many_rejects_a_bad_call_before_writing_anything(db):
    # Given one bad call among good ones
    calls = [(tasks.add, (1, 2), {}), (tasks.add, (object(), 2), {}), (tasks.add, (3, 4), {})]
    # When they are enqueued in bulk, then the bad value is named and nothing is written
    with pytest.raises(InvalidJobArguments, match=r"args\[0\]"):
        backend().enqueue_many(calls)
    assert not Job.objects.exists()


def test_enqueue_many_joins_the_callers_transaction(transactional_db):
    # Given a bulk enqueue inside a transaction that is rolled back
    with pytest.raises(RuntimeError), transaction.atomic():
        backend().enqueue_many([(tasks.add, (i, i), {}) for i in range(20)])
        assert Job.objects.count() == 20
        raise RuntimeError("roll back")
    # Then no job remains
    assert not Job.objects.exists()


def test_single_enqueue_row_reads_back_like_the_orm_wrote_it(db):
    # Given a job enqueued through the fast single-row INSERT
    result = tasks.echo.using(priority=3).enqueue(1, "two", three=[3.5, None, True])
    # Then the ORM reads back the same values, and get_result agrees
    job = Job.objects.get(pk=result.id)
    assert (job.args, job.kwargs, job.priority) == ([1, "two"], {"three": [3.5, None, True]}, 3)
    fetched = backend().get_result(result.id)
    assert (fetched.args, fetched.kwargs, fetched.status) == (
        [1, "two"],
        {"three": [3.5, None, True]},
        "READY",
    )
