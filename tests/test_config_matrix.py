"""The queue configurations users write, each run end to end through a real ``runworker``.

Cells: the worker's ``QUEUES`` (empty: any queue / one / several) × its flags (none / one
``--queue`` / several ``--queue``), a paused queue among several, and ``--processes 2``. Every
cell enqueues jobs in the three declared queues and runs a ``--burst`` worker: the queues it
serves end SUCCESSFUL, the others stay READY, untouched. The per-database runs of
``scripts/test.sh`` run the matrix on SQLite, PostgreSQL and MariaDB, and its ``redis-broker``
run (``JOBS_OPTIONS`` broker=redis) on the Redis broker, which every cell checks it really used.
"""

import pytest

from django_jobs.jobs import operations
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from django_jobs.tasks_api import task_backends
from testproject.demo import tasks
from tests.conftest import BASE_OPTIONS, QUEUES

pytestmark = pytest.mark.processes

#: The demo's tasks, all on the default queue: a project declaring only "default" can load them
#: (tests.tasks declares a task on "emails", which such a project refuses at import).
OPTIONS = {"task_modules": ["testproject.demo.tasks"]}

ANY = []  # QUEUES = []: any queue name is allowed, a default worker serves every queue
ONE = ["default"]
TWO = ["emails", "reports"]

#: (worker QUEUES, runworker flags, the queues whose jobs must run)
CELLS = {
    "any-queue/no-flag": (ANY, [], QUEUES),
    "any-queue/one-flag": (ANY, ["--queue", "emails"], ["emails"]),
    "any-queue/two-flags": (ANY, ["--queue", "emails", "--queue", "reports"], TWO),
    "one-queue/no-flag": (ONE, [], ["default"]),
    "three-queues/no-flag": (QUEUES, [], QUEUES),
    "three-queues/one-flag": (QUEUES, ["--queue", "reports"], ["reports"]),
    "three-queues/two-flags": (QUEUES, ["--queue", "emails", "--queue", "reports"], TWO),
}  # fmt: skip


def enqueue_in_every_queue() -> dict[str, list]:
    """Two jobs in each declared queue; with the Redis broker, check Redis got their ids."""
    results = {q: [tasks.add.using(queue_name=q).enqueue(i, 10) for i in range(2)] for q in QUEUES}
    if BASE_OPTIONS.get("broker") == "redis":
        assert all(in_redis(r) for rs in results.values() for r in rs), "not published to Redis"
    return results


def in_redis(result) -> bool:
    """Whether the Redis broker holds ``result``'s id as ready (always False on the database)."""
    broker = task_backends["default"].broker
    if BASE_OPTIONS.get("broker") != "redis":
        return False
    store = broker.store
    return store.redis.zscore(store.keys.ready(result.task.queue_name), result.id) is not None


def assert_served(results: dict[str, list], served) -> None:
    for queue, queued in results.items():
        jobs = [Job.objects.get(pk=r.id) for r in queued]
        if queue in served:
            assert [(j.status, j.return_value) for j in jobs] == [
                (JobStatus.SUCCESSFUL, 10),
                (JobStatus.SUCCESSFUL, 11),
            ], queue
            assert not any(in_redis(r) for r in queued), f"{queue}: claimed, yet still in Redis"
        else:
            assert [(j.status, j.attempts) for j in jobs] == [(JobStatus.READY, 0)] * 2, queue


def assert_clean(worker) -> None:
    output = worker.output()
    assert "Traceback" not in output, output
    assert " failed " not in output, output  # "claim failed …", "heartbeat failed …"


@pytest.mark.parametrize(("queues", "flags", "served"), CELLS.values(), ids=CELLS.keys())
def test_worker_runs_the_jobs_of_the_queues_it_serves(spawn_worker, queues, flags, served):
    # Given two jobs in each of the queues default, emails and reports
    results = enqueue_in_every_queue()
    # When a burst worker whose settings declare ``queues`` runs with ``flags``
    worker = spawn_worker("--burst", *flags, queues=queues, options=OPTIONS)
    # Then it exits 0 having run the jobs of the queues it serves, and only those
    assert worker.wait(60) == 0, worker.output()
    assert_served(results, served)
    assert_clean(worker)
    # And its registration names the queues it served (none: every queue)
    served_names = [flags[i + 1] for i in range(0, len(flags), 2)] or sorted(queues)
    assert Worker.objects.get().queues == served_names


def test_paused_queue_among_several_keeps_its_jobs(spawn_worker):
    # Given jobs in three declared queues, emails paused
    operations.pause_queue("default", "emails")
    results = enqueue_in_every_queue()
    # When a burst worker serves every declared queue
    worker = spawn_worker("--burst", queues=QUEUES, options=OPTIONS)
    # Then the jobs of default and reports ran, and the paused queue's jobs are untouched
    assert worker.wait(60) == 0, worker.output()
    assert_served(results, ["default", "reports"])
    assert_clean(worker)


def test_two_processes_serve_several_queues(spawn_worker):
    # Given jobs in three declared queues
    results = enqueue_in_every_queue()
    # When a burst runworker with two processes serves them
    worker = spawn_worker("--burst", "--processes", "2", queues=QUEUES, options=OPTIONS)
    # Then both processes registered, and every job ran
    assert worker.wait(60) == 0, worker.output()
    assert_served(results, QUEUES)
    assert_clean(worker)
    assert [w.processes for w in Worker.objects.all()] == [2, 2]
