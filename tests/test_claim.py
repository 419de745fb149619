"""The database broker's claim: order, filters, batch size, columns set, and concurrency."""

import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs.db.writes import relax_commits
from django_jobs.jobs import claims
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import task_backends
from tests import tasks
from tests.conftest import copy_job

#: Queries of one claim that finds jobs, per vendor, pinned so the hot path cannot silently
#: grow. PostgreSQL: one UPDATE … RETURNING. Elsewhere (inside the test's transaction):
#: SAVEPOINT, SELECT … FOR UPDATE SKIP LOCKED, UPDATE, RELEASE SAVEPOINT, SELECT claimed rows.
CLAIM_QUERIES = {
    "postgresql": 1,
    "mysql": 5,
    "sqlite": 3,
}  # SQLite: BEGIN, UPDATE … RETURNING, COMMIT

LEASE = timedelta(minutes=5)

only_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL-only claim (UPDATE … SKIP LOCKED)"
)


def claim(worker_id="worker-a", queues=(), limit=10, now=None):
    broker = task_backends["default"].broker
    return broker.claim(worker_id, list(queues), limit, now or timezone.now())


def enqueue(task, *args, age=0, **using):
    """Enqueue ``task`` and make it ``age`` seconds old (older runs first at equal priority)."""
    result = (task.using(**using) if using else task).enqueue(*args)
    if age:
        Job.objects.filter(pk=result.id).update(run_after=timezone.now() - timedelta(seconds=age))
    return result.id


def claimed_one_by_one(count):
    ids = []
    for _ in range(count):
        [job] = claim(limit=1)
        ids.append(str(job.pk))
    return ids


def test_claim_takes_higher_priority_first_then_oldest(db):
    # Given jobs of mixed priority and age
    low = enqueue(tasks.add, 1, 1, age=100, priority=-5)
    new_high = enqueue(tasks.add, 1, 1, age=1, priority=10)
    old_high = enqueue(tasks.add, 1, 1, age=50, priority=10)
    middle = enqueue(tasks.add, 1, 1, age=10)
    # When they are claimed one at a time
    order = claimed_one_by_one(4)
    # Then priority wins, and age breaks ties
    assert order == [old_high, new_high, middle, low]


def test_claim_leaves_future_jobs_until_they_are_due(db):
    # Given a job deferred by an hour
    now = timezone.now()
    deferred = enqueue(tasks.add, 1, 1, run_after=now + timedelta(hours=1))
    # When claiming now, nothing comes out
    assert claim(now=now) == []
    # Then once the hour has passed, the job is claimed
    [job] = claim(now=now + timedelta(hours=1, seconds=1))
    assert str(job.pk) == deferred


def test_claim_only_takes_jobs_from_the_given_queues(db):
    # Given one job on "default" and one on "emails"
    default = enqueue(tasks.add, 1, 1)
    other = enqueue(tasks.other_queue, 1)
    # When a worker claims from "emails" only, it never gets the "default" job
    assert [str(j.pk) for j in claim(queues=["emails"])] == [other]
    assert claim(queues=["emails"]) == []
    assert claim(queues=["missing"]) == []
    # Then an empty queue list means every queue
    assert [str(j.pk) for j in claim(queues=[])] == [default]


def test_claim_returns_at_most_limit_jobs_per_call(db):
    # Given five ready jobs
    for i in range(5):
        enqueue(tasks.add, i, i)
    # When claiming with limit 3, three times
    batches = [len(claim(limit=3)) for _ in range(3)]
    # Then batches of 3, then the remaining 2, then none
    assert batches == [3, 2, 0]
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 5


def test_claim_marks_job_running_for_worker_with_lease(db):
    # Given a ready job
    pk = enqueue(tasks.add, 1, 2, max_attempts=3)
    lease = task_backends["default"].jobs_options.lease
    first_at = timezone.now()
    # When worker A claims it
    [returned] = claim("worker-a", now=first_at)
    job = Job.objects.get(pk=pk)
    # Then it is RUNNING for A, one attempt counted, leased and stamped
    assert returned.status == JobStatus.RUNNING
    assert returned.claimed_by == "worker-a"
    assert job.status == JobStatus.RUNNING
    assert job.attempts == 1
    assert job.claimed_by == "worker-a"
    assert leased_from_database_clock(job, first_at, lease)
    assert job.worker_ids == ["worker-a"]
    assert job.started_at == first_at
    assert job.last_attempted_at == first_at


def test_second_claim_keeps_started_at_and_appends_worker(db):
    # Given a job claimed by A and put back in the queue
    pk = enqueue(tasks.add, 1, 2, max_attempts=3)
    first_at = timezone.now()
    assert len(claim("worker-a", now=first_at)) == 1
    Job.objects.filter(pk=pk).requeue()
    # When B claims it, its host's clock saying five minutes later
    second_at = first_at + timedelta(minutes=5)
    assert len(claim("worker-b", now=second_at)) == 1
    job = Job.objects.get(pk=pk)
    # Then started_at is the first claim's, the rest describe the second attempt
    assert job.started_at == first_at
    assert job.last_attempted_at == second_at
    assert job.attempts == 2
    assert job.claimed_by == "worker-b"
    assert job.worker_ids == ["worker-a", "worker-b"]
    # And the lease is timed by the database's clock, not by B's
    assert leased_from_database_clock(job, first_at, task_backends["default"].jobs_options.lease)


def leased_from_database_clock(job, before, lease) -> bool:
    """The lease runs out ``lease`` after the claim by the database's clock (here the same
    machine's as the test's: ``before`` the claim, now after it; 1 s of rounding slack)."""
    slack = timedelta(seconds=1)
    return before + lease - slack <= job.lease_expires_at <= timezone.now() + lease + slack


def test_claim_never_takes_running_or_finished_jobs(db):
    # Given a job in every non-ready status
    for status in (
        JobStatus.RUNNING,
        JobStatus.SUCCESSFUL,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    ):
        Job.objects.filter(pk=enqueue(tasks.add, 1, 1)).update(status=status)
    # When a worker claims, then nothing is handed out
    assert claim() == []


def test_concurrent_claimers_take_every_job_exactly_once(transactional_db):
    # Given 300 committed ready jobs
    backend = task_backends["default"]
    now = timezone.now()
    Job.objects.bulk_create([backend.build_job(tasks.add, [i, i], {}, now=now) for i in range(300)])
    claimed: list[list[str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    total = [0]

    def claimer(worker_id):
        mine = []
        try:
            deadline = time.monotonic() + 60
            # An empty batch only means the others hold the rest: go on until all are taken.
            while total[0] < 300 and time.monotonic() < deadline:
                jobs = claim(worker_id, limit=7)
                mine.extend(str(j.pk) for j in jobs)
                with lock:
                    total[0] += len(jobs)
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)
        finally:
            connections.close_all()
            with lock:
                claimed.append(mine)

    # When six threads, each with its own connection, claim 7 at a time concurrently
    threads = [threading.Thread(target=claimer, args=(f"worker-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    # Then every job was claimed exactly once, by one thread
    assert not errors
    everything = [pk for mine in claimed for pk in mine]
    assert len(everything) == 300
    assert len(set(everything)) == 300
    assert Job.objects.filter(status=JobStatus.RUNNING, attempts=1).count() == 300
    for mine in claimed:
        worker_ids = set(Job.objects.filter(pk__in=mine).values_list("claimed_by", flat=True))
        assert len(worker_ids) <= 1


def test_claim_query_count_is_pinned(db, django_assert_num_queries):
    # Given a busy worker (its last claim found jobs) and more ready jobs
    for i in range(4):
        enqueue(tasks.add, i, i)
    relax_commits("default")  # a session setting, made once per connection
    assert len(claim(limit=1)) == 1
    # When it claims them, then it takes a fixed number of queries
    with django_assert_num_queries(CLAIM_QUERIES[connection.vendor]):
        jobs = claim(limit=3)
    assert len(jobs) == 3


def test_an_idle_sqlite_worker_polls_with_reads_and_no_write_lock(
    db, django_assert_max_num_queries
):
    if connection.vendor != "sqlite":
        pytest.skip("the read-before-write poll is SQLite's (one write lock per database)")
    # Given an idle worker (its last claim found nothing)
    assert claim(limit=3) == []
    # When it polls again with nothing ready, then it only reads (the ready jobs, and the
    # gated ones at most once per poll interval): no BEGIN IMMEDIATE, no UPDATE
    with django_assert_max_num_queries(2) as captured:
        assert claim(limit=3) == []
    assert all(q["sql"].startswith("SELECT") for q in captured.captured_queries)
    # And once a job is ready, the next poll claims it
    enqueue(tasks.add, 1, 1)
    assert len(claim(limit=3)) == 1


@only_postgresql
def test_postgresql_claim_is_one_statement(db, django_assert_num_queries):
    # Given ready jobs
    for i in range(3):
        enqueue(tasks.add, i, i)
    relax_commits("default")  # a session setting, made once per connection
    # When a worker claims them, then a single UPDATE … RETURNING does it
    with django_assert_num_queries(1) as captured:
        assert len(claim(limit=3)) == 3
    sql = captured.captured_queries[0]["sql"]
    assert sql.startswith("UPDATE") and "SKIP LOCKED" in sql and "RETURNING" in sql


@contextmanager
def lock_wait_limit(seconds=10):
    """Make a lock wait in this connection fail after ``seconds`` instead of hanging."""
    settings = {
        "postgresql": (f"SET statement_timeout = '{seconds}s'", "RESET statement_timeout"),
        "mysql": (
            f"SET SESSION innodb_lock_wait_timeout = {seconds}",
            "SET SESSION innodb_lock_wait_timeout = DEFAULT",
        ),
    }
    limit, reset = settings[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(limit)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(reset)


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite has no row locks: its claim serialises on the IMMEDIATE transaction",
)
def test_claim_skips_rows_locked_by_another_transaction(transactional_db):
    # Given two committed jobs, the older one locked by another connection's open transaction
    locked = enqueue(tasks.add, 1, 1, age=10)
    free = enqueue(tasks.add, 2, 2)
    holding, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                list(Job.objects.select_for_update().filter(pk=locked))
                holding.set()
                release.wait(30)
        finally:
            connections.close_all()

    locker = threading.Thread(target=hold_lock)
    locker.start()
    try:
        assert holding.wait(10)
        # When a worker claims while the lock is held
        with lock_wait_limit():
            jobs = claim(limit=10)
    finally:
        release.set()
        locker.join(30)
    # Then it takes the free job at once and leaves the locked one READY
    assert [str(j.pk) for j in jobs] == [free]
    assert Job.objects.get(pk=locked).status == JobStatus.READY


@only_postgresql
def test_postgresql_claim_can_use_partial_claim_index(db):
    # Given a table with a history of finished jobs and a ready one, its statistics fresh (the
    # planner's choice must not depend on what earlier tests left in the table's statistics)
    result = enqueue(tasks.add, 1, 1)
    copy_job(result, 2000)
    Job.objects.exclude(pk=result).update(status=JobStatus.SUCCESSFUL, finished_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_job")
    # And the claim statement as the broker sends it
    with CaptureQueriesContext(connection) as captured:
        claim(queues=["default"], limit=5)
    [query] = [q for q in captured.captured_queries if q["sql"].startswith("UPDATE")]
    # When the planner is told to avoid sequential scans
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + query["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Then the inner SELECT walks the partial claim index
    assert "django_jobs_job_claim" in plan, plan


@only_postgresql
def test_claim_by_ids_looks_rows_up_by_primary_key_when_statistics_are_stale(db):
    # Given statistics taken while no job was READY, then a burst of ready jobs (the planner
    # thinks a handful are READY until autovacuum analyzes the table again, up to a minute)
    copy_job(enqueue(tasks.add, 1, 1), 2000)
    Job.objects.update(status=JobStatus.SUCCESSFUL, finished_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_job")
    backend = task_backends["default"]
    burst = backend.enqueue_many([(tasks.add, (i, i), {}) for i in range(3000)])
    # When the Redis broker's claim takes 50 of them by id, as it sends the statement
    ids = [result.id for result in burst[:50]]
    with CaptureQueriesContext(connection) as captured:
        jobs = claims.claim_ids("default", "default", ids, "w1", timezone.now(), LEASE)
    assert sorted(str(job.pk) for job in jobs) == sorted(ids)
    [query] = [q for q in captured.captured_queries if "UPDATE" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + query["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Then the rows are found by their primary key, never by walking the ready backlog in the
    # claim index (3,000 rows filtered out per claim, a claim ~15 times slower)
    assert "django_jobs_job_pkey" in plan, plan
    assert "django_jobs_job_claim" not in plan, plan


def test_claim_only_takes_jobs_of_its_own_backend_alias(db):
    # Given a job enqueued through another TASKS alias on the same database and queue
    other = enqueue(tasks.add, 1, 1)
    Job.objects.filter(pk=other).update(backend="other-alias")
    mine = enqueue(tasks.add, 2, 2)
    # When the default backend's broker claims
    claimed = claim(limit=10)
    # Then only its own job is taken
    assert [str(job.pk) for job in claimed] == [mine]


@pytest.mark.parametrize("queues", [["emails", "default"], ["emails"]])
def test_claim_leaves_paused_queues_out_of_an_explicit_queue_list(db, queues):
    # Given jobs in two queues, "emails" paused
    enqueue(tasks.other_queue, 1)
    mine = enqueue(tasks.add, 1, 2)
    broker = task_backends["default"].broker
    broker.set_paused(frozenset({"emails"}))
    try:
        # When a worker serving an explicit queue list claims
        claimed = claim(queues=queues)
    finally:
        broker.set_paused(frozenset())
    # Then nothing comes from the paused queue
    assert [str(job.pk) for job in claimed] == ([mine] if "default" in queues else [])


def test_claimed_jobs_carry_every_field_so_running_them_needs_no_query(
    db, django_assert_num_queries
):
    # Given a claimed job
    tasks.echo.enqueue(1, k="v")
    [job] = claim(limit=1)
    # When the worker reads any of its fields, then no query is made (nothing deferred)
    with django_assert_num_queries(0):
        values = {f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields}
    assert (values["args"], values["kwargs"], values["status"]) == ([1], {"k": "v"}, "RUNNING")
    assert values["worker_ids"] == ["worker-a"]
