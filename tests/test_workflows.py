"""Workflows: chain, group and chord persisted as jobs; steps advanced on completion."""

from pathlib import Path

import pytest
from django.utils import timezone

from django_jobs import chain, chord, group
from django_jobs.jobs.operations import cancel
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import TaskResultStatus, task_backends
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from tests import tasks
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def call(task, args, kwargs):
    return task.func(*args, **kwargs)


def drain(backend="default", rounds=50) -> int:
    """Claim and run jobs in this process until none is left; return how many ran."""
    ran = 0
    for _ in range(rounds):
        jobs = task_backends[backend].broker.claim("worker-a", [], 10, timezone.now())
        if not jobs:
            return ran
        for job in jobs:
            run_attempt(Attempt(job, "worker-a", task_backends[backend]), call=call)
        ran += len(jobs)
    return ran


def statuses(workflow) -> list[str]:
    return [r.status for r in workflow.results()]


def test_chain_feeds_each_result_to_the_next_step():
    # Given a chain whose last step is immutable
    workflow = chain(tasks.add.s(1, 2), tasks.add.s(10), tasks.mul.si(3, 4)).enqueue()
    # Then only the first step is ready; the others are blocked (READY in Django's terms)
    rows = Job.objects.filter(workflow_id=workflow.id)
    assert sorted(rows.values_list("status", flat=True)) == ["BLOCKED", "BLOCKED", "READY"]
    assert workflow.status == TaskResultStatus.READY
    # When workers run what is ready
    assert drain() == 3
    # Then 1+2=3 fed 3+10=13; mul ignored it
    assert [r.return_value for r in workflow.results()] == [3, 13, 12]
    assert [r.args for r in workflow.results()] == [[1, 2], [3, 10], [3, 4]]
    assert workflow.status == TaskResultStatus.SUCCESSFUL
    assert workflow.return_value == 12


def test_group_runs_in_parallel_and_returns_the_list():
    workflow = group(tasks.add.s(1, 1), tasks.add.s(2, 2), tasks.add.s(3, 3)).enqueue()
    assert Job.objects.filter(workflow_id=workflow.id, status=JobStatus.READY).count() == 3
    drain()
    assert workflow.return_value == [2, 4, 6]


def test_chord_calls_back_once_with_every_result_in_order():
    workflow = chord([tasks.add.s(i, i) for i in range(4)], tasks.echo.s(extra=1)).enqueue()
    drain()
    assert workflow.return_value == {"args": [[0, 2, 4, 6]], "kwargs": {"extra": 1}}
    assert workflow.status == TaskResultStatus.SUCCESSFUL


def test_chain_through_a_group():
    workflow = chain(
        tasks.add.s(1, 1), group(tasks.mul.s(2), tasks.mul.s(3)), tasks.total.s()
    ).enqueue()
    drain()
    assert [r.return_value for r in workflow.results()] == [2, 4, 6, 10]
    assert workflow.return_value == 10


def test_failure_stops_the_rest_by_default():
    workflow = chain(tasks.add.s(1, 1), tasks.fails.s(), tasks.add.s(1)).enqueue()
    drain()
    assert statuses(workflow) == ["SUCCESSFUL", "FAILED", "FAILED"]  # CANCELLED → FAILED
    rows = Job.objects.filter(workflow_id=workflow.id).order_by("enqueued_at")
    assert sorted(rows.values_list("status", flat=True)) == ["CANCELLED", "FAILED", "SUCCESSFUL"]
    assert workflow.status == TaskResultStatus.FAILED


def test_failure_stops_a_chord_callback_but_not_running_siblings():
    workflow = chord([tasks.fails.si(), tasks.add.si(1, 1)], tasks.total.s()).enqueue()
    drain()
    by_path = dict(Job.objects.filter(workflow_id=workflow.id).values_list("task_path", "status"))
    assert by_path == {
        "tests.tasks.fails": "FAILED",
        "tests.tasks.add": "SUCCESSFUL",
        "tests.tasks.total": "CANCELLED",
    }


def test_continue_policy_runs_the_next_steps_with_none_for_a_failed_one():
    workflow = chord([tasks.fails.si(), tasks.add.si(1, 1)], tasks.echo.s()).enqueue(
        on_failure="continue"
    )
    drain()
    assert workflow.return_value == {"args": [[None, 2]], "kwargs": {}}
    assert workflow.status == TaskResultStatus.FAILED  # one step failed


def test_cancelling_a_blocked_step_stops_the_workflow():
    workflow = chain(tasks.add.s(1, 1), tasks.add.s(1), tasks.add.s(1)).enqueue()
    second = workflow.workflow.steps[1]
    assert cancel("default", [second]) == 1
    drain()
    assert sorted(Job.objects.filter(workflow_id=workflow.id).values_list("status", flat=True)) == [
        "CANCELLED",
        "CANCELLED",
        "CANCELLED",
    ]


def test_workflow_steps_respect_limits():
    workflow = group(*[tasks.one_at_a_time.si("/tmp", 0) for _ in range(3)]).enqueue()
    jobs = task_backends["default"].broker.claim("w", [], 10, timezone.now())
    assert len(jobs) == 1 and str(jobs[0].workflow_id) == workflow.id


def test_job_admin_page_shows_the_whole_workflow(admin_client):
    workflow = chain(tasks.add.s(1, 2), tasks.mul.s(5)).enqueue()
    first, second = workflow.workflow.steps
    page = admin_client.get(f"/admin/django_jobs/job/{second}/change/").content.decode()
    assert workflow.id in page and first[:8] in page and "tests.tasks.add" in page
    assert "Blocked" in page


# --- real workers ---------------------------------------------------------------------------
@pytest.mark.processes
def test_chords_fire_their_callback_exactly_once_across_workers(
    spawn_worker, fast_backend, tmp_path
):
    # Given twenty chords of ten steps each
    path = tmp_path / "callbacks"
    path.touch()
    workflows = [
        chord([tasks.add.si(n, i) for i in range(10)], tasks.chord_callback.s(str(path))).enqueue()
        for n in range(20)
    ]
    # When two worker processes (four slots each) run them
    for _ in range(2):
        spawn_worker("--concurrency", "4")
    done = Job.objects.filter(status=JobStatus.SUCCESSFUL)
    wait_for(lambda: done.count() == 220, timeout=90, message="220 jobs done")
    # Then each callback ran exactly once, with its group's results
    lines = Path(path).read_text().split()
    assert sorted(map(int, lines)) == sorted(10 * n + 45 for n in range(20))
    assert [w.return_value for w in workflows] == [10 * n + 45 for n in range(20)]
    callbacks = Job.objects.filter(task_path="tests.tasks.chord_callback")
    assert set(callbacks.values_list("attempts", flat=True)) == {1}


@pytest.mark.processes
def test_chain_runs_in_a_worker_process(spawn_worker, fast_backend):
    workflow = chain(tasks.add.s(1, 2), tasks.add.s(10), tasks.mul.s(2)).enqueue()
    spawn_worker("--concurrency", "2")
    wait_for(lambda: workflow.status == TaskResultStatus.SUCCESSFUL, timeout=30)
    assert workflow.return_value == 26


@pytest.mark.redis
@pytest.mark.processes
def test_chain_runs_on_the_redis_broker(spawn_worker, redis_backend):
    # Next steps are published to Redis when they become ready
    workflow = chain(
        tasks.add.using(backend="redis").s(1, 2),
        tasks.add.using(backend="redis").s(10),
        group(tasks.mul.using(backend="redis").s(2), tasks.mul.using(backend="redis").s(3)),
    ).enqueue()
    spawn_worker("--backend", "redis", "--concurrency", "2", options={"poll_interval": 30})
    wait_for(lambda: workflow.status == TaskResultStatus.SUCCESSFUL, timeout=30)
    assert workflow.return_value == [26, 39]
