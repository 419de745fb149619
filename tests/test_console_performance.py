"""The console on a million job rows (PostgreSQL): bounded queries that use indexes.

Asserts query counts and plan shapes, never wall time.
"""

import pytest
from django.db import connection
from django.urls import reverse

#: The seeding counts towards the first test's timeout; beside the other CI runs on two cores it
#: has taken minutes.
pytestmark = [pytest.mark.performance, pytest.mark.django_db, pytest.mark.timeout(600)]

ROWS = 1_000_000

#: Every queue/status mix the console reads; ~30 days of history, 2% failed, some waiting.
INSERT = """
INSERT INTO django_jobs_job (
    id, backend, queue_name, priority, task_path, args, kwargs, options, status, run_after,
    enqueued_at, started_at, last_attempted_at, finished_at, attempts, max_attempts, timeout,
    return_value, errors, worker_ids, claimed_by, lease_expires_at, progress
)
SELECT
    gen_random_uuid(), 'default', (ARRAY['default', 'emails', 'reports'])[1 + i %% 3], 0,
    'tests.tasks.add', jsonb_build_array(i, i), '{}', '{}', s.status, s.t, s.t,
    CASE WHEN s.status = 'READY' THEN NULL ELSE s.t + interval '1 second' END,
    CASE WHEN s.status = 'READY' THEN NULL ELSE s.t + interval '1 second' END,
    CASE WHEN s.status IN ('READY', 'RUNNING') THEN NULL ELSE s.t + interval '2 seconds' END,
    1, 1, NULL, NULL, '[]', '[]',
    CASE WHEN s.status = 'READY' THEN NULL ELSE 'worker-' || (i %% 8) END,
    CASE WHEN s.status = 'RUNNING' THEN now() + interval '1 minute' END, NULL
FROM (
    SELECT i, now() - i * interval '2.6 seconds' AS t,
        CASE WHEN i %% 1000 = 0 THEN 'READY' WHEN i %% 1000 = 1 THEN 'RUNNING'
             WHEN i %% 50 = 2 THEN 'FAILED' ELSE 'SUCCESSFUL' END AS status
    FROM generate_series(1, %s) AS i
) AS s
"""

#: The job table's indexes that back no constraint (the primary key stays).
SECONDARY_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename = 'django_jobs_job' AND indexname NOT IN (
    SELECT conname FROM pg_constraint WHERE conrelid = 'django_jobs_job'::regclass
)
"""


@pytest.fixture(scope="module")
def million_jobs(django_db_setup, django_db_blocker):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: plans and planner estimates are PostgreSQL's")
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            # Maintaining a dozen indexes row by row is most of a million-row INSERT's cost
            # (and, beside the other CI runs, took it past the test timeout): the secondary
            # indexes are dropped, the rows written, the indexes built again in one pass each.
            cursor.execute(SECONDARY_INDEXES)
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            cursor.execute(INSERT, [ROWS])
            for _, definition in indexes:
                cursor.execute(definition)
            cursor.execute("ANALYZE django_jobs_job")
        yield
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE django_jobs_job, django_jobs_jobminute")


def job_table_plans(queries) -> dict[str, str]:
    """EXPLAIN of every captured SELECT that reads the job table."""
    plans = {}
    with connection.cursor() as cursor:
        for query in queries:
            sql = query["sql"]
            if sql.startswith("SELECT") and '"django_jobs_job"' in sql:
                cursor.execute("EXPLAIN " + sql)
                plans[sql] = "\n".join(row[0] for row in cursor.fetchall())
    return plans


def assert_indexed(plans: dict[str, str]) -> None:
    assert plans
    for sql, plan in plans.items():
        assert "Seq Scan on django_jobs_job " not in plan, f"{sql}\n{plan}"


@pytest.mark.parametrize(
    "query",
    ["", "?status__exact=FAILED", "?status__exact=READY&queue_name=emails", "?q=tests.tasks.add"],
)
def test_changelist_on_a_million_jobs_is_bounded_and_indexed(
    million_jobs, admin_client, django_assert_max_num_queries, query
):
    with django_assert_max_num_queries(12) as captured:
        response = admin_client.get(reverse("admin:django_jobs_job_changelist") + query)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100
    if query != "?q=tests.tasks.add":  # a text search scans, within the LIMIT
        assert_indexed(job_table_plans(captured.captured_queries))


def test_unfiltered_changelist_shows_the_planner_estimate_instead_of_counting(
    million_jobs, admin_client
):
    response = admin_client.get(reverse("admin:django_jobs_job_changelist"))
    assert response.context["cl"].result_count == pytest.approx(ROWS, rel=0.2)


def test_dashboard_on_a_million_jobs_is_bounded_and_indexed(
    million_jobs, admin_client, django_assert_max_num_queries
):
    url = reverse("admin:django_jobs_dashboard_data")
    admin_client.get(url)  # rolls up the last day of counters
    # 15 queries, plus up to 5 when a minute boundary passed since the first call and the
    # newly completed minute is rolled up too (the bound must not depend on the clock).
    with django_assert_max_num_queries(20) as captured:
        data = admin_client.get(url).json()
    assert data["total"]["estimated"] is True
    assert {q["name"] for q in data["queues"]} == {"default", "emails", "reports"}
    assert data["throughput"]["day"]["failure_rate"] == pytest.approx(0.02, abs=0.005)
    assert_indexed(job_table_plans(captured.captured_queries))


def some_jobs(status: str, n: int) -> list[str]:
    """Ids of ``n`` jobs in ``status``, found by the (status, finished_at) or lease index."""
    from django_jobs.models import Job

    return [str(pk) for pk in Job.objects.filter(status=status).values_list("pk", flat=True)[:n]]


@pytest.mark.parametrize("status", ["FAILED", "RUNNING"])
def test_job_page_on_a_million_jobs_is_bounded_and_indexed(
    million_jobs, admin_client, django_assert_max_num_queries, status
):
    [job_id] = some_jobs(status, 1)
    with django_assert_max_num_queries(8) as captured:
        response = admin_client.get(reverse("admin:django_jobs_job_change", args=[job_id]))
    assert response.status_code == 200
    assert_indexed(job_table_plans(captured.captured_queries))


def test_live_endpoint_on_a_million_jobs_is_bounded_and_indexed(
    million_jobs, admin_client, django_assert_max_num_queries
):
    ids = some_jobs("SUCCESSFUL", 90) + some_jobs("RUNNING", 10)
    url = reverse("admin:django_jobs_job_live")
    with django_assert_max_num_queries(3) as captured:
        rows = admin_client.get(url, {"id": ids}).json()["jobs"]
    assert len(rows) == 100
    with django_assert_max_num_queries(3) as detail:
        admin_client.get(url, {"id": ids[-1], "detail": "1"})
    assert_indexed(job_table_plans([*captured.captured_queries, *detail.captured_queries]))


@pytest.fixture
def million_job_workers(million_jobs):
    """Worker rows for the history's claimers, and a workflow of three steps."""
    from datetime import timedelta

    from django.utils import timezone

    from django_jobs import chain
    from django_jobs.models import Worker
    from tests import tasks

    now = timezone.now()
    for i in range(8):
        Worker.objects.create(
            id=f"worker-{i}",
            hostname="host",
            pid=i,
            started_at=now - timedelta(days=1),
            last_heartbeat_at=now,
        )
    return chain(tasks.add.s(1, 2), tasks.add.s(10), tasks.mul.si(3, 4)).enqueue()


def test_queues_page_on_a_million_jobs_is_bounded_and_indexed(
    million_jobs, admin_client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(10) as captured:
        response = admin_client.get(reverse("admin:django_jobs_queue_changelist"))
    assert [q["name"] for q in response.context["queues"]] == ["default", "emails", "reports"]
    assert all(q["ready"] > 300 for q in response.context["queues"])
    assert_indexed(job_table_plans(captured.captured_queries))


def test_workers_pages_on_a_million_jobs_are_bounded_and_indexed(
    million_job_workers, admin_client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(10) as listing:
        response = admin_client.get(reverse("admin:django_jobs_worker_changelist"))
    assert len(response.context["cl"].result_list) == 8
    with django_assert_max_num_queries(12) as page:
        response = admin_client.get(reverse("admin:django_jobs_worker_change", args=["worker-1"]))
    assert response.status_code == 200
    assert_indexed(job_table_plans([*listing.captured_queries, *page.captured_queries]))
    # "its jobs" links to the job list filtered by worker: bounded in queries, but claimed_by
    # has no index, so its capped count (LIMIT 10001) scans until it has found that many.
    its_jobs = reverse("admin:django_jobs_job_changelist") + "?claimed_by=worker-1"
    with django_assert_max_num_queries(12):
        assert len(admin_client.get(its_jobs).context["cl"].result_list) == 100


def test_workflows_pages_on_a_million_jobs_are_bounded_and_indexed(
    million_job_workers, admin_client, django_assert_max_num_queries
):
    workflow = million_job_workers
    with django_assert_max_num_queries(8) as listing:
        response = admin_client.get(reverse("admin:django_jobs_workflow_changelist"))
    assert len(response.context["cl"].result_list) == 1
    with django_assert_max_num_queries(10) as page:
        response = admin_client.get(
            reverse("admin:django_jobs_workflow_change", args=[workflow.id])
        )
    assert response.status_code == 200
    steps = reverse("admin:django_jobs_job_changelist") + f"?workflow__exact={workflow.id}"
    with django_assert_max_num_queries(12) as jobs:
        assert len(admin_client.get(steps).context["cl"].result_list) == 3
    queries = [*listing.captured_queries, *page.captured_queries, *jobs.captured_queries]
    assert_indexed(job_table_plans(queries))


#: Give the failed rows of the last week an error of one of three classes (in the test's
#: transaction: rolled back after it).
FAILED_ERRORS = """
UPDATE django_jobs_job SET errors = jsonb_build_array(jsonb_build_object(
    'exception_class_path', (ARRAY['builtins.ValueError', 'builtins.KeyError', 'app.Timeout'])
        [1 + (extract(epoch FROM finished_at)::bigint % 3)],
    'traceback', 'Traceback (most recent call last):\n  boom\n', 'attempt', 1, 'worker_id', 'w'))
WHERE status = 'FAILED' AND finished_at >= now() - interval '7 days'
"""


def test_failures_page_on_a_million_jobs_is_bounded_and_indexed(
    million_jobs, admin_client, django_assert_max_num_queries
):
    with connection.cursor() as cursor:
        cursor.execute(FAILED_ERRORS)
    url = reverse("admin:django_jobs_failure_changelist")
    with django_assert_max_num_queries(5) as captured:
        response = admin_client.get(url + "?window=week")
    groups = response.context["failures"].groups
    assert {g.exception_class for g in groups} == {
        "builtins.ValueError",
        "builtins.KeyError",
        "app.Timeout",
    }
    # a week of 2.6-second jobs, 2% failed: ~4,650
    assert sum(g.count for g in groups) == pytest.approx(4650, rel=0.05)
    assert_indexed(job_table_plans(captured.captured_queries))
    # The group action's confirmation counts the group along the same index
    group = {"task": "tests.tasks.add", "exception_class": "app.Timeout", "window": "day"}
    with django_assert_max_num_queries(5) as captured:
        response = admin_client.post(
            reverse("admin:django_jobs_failure_group"), {"action": "retry", **group}
        )
    assert response.context["count"] == pytest.approx(665 / 3, rel=0.2)
    assert_indexed(job_table_plans(captured.captured_queries))


def test_task_page_on_a_million_jobs_is_bounded_and_indexed(
    million_jobs, admin_client, django_assert_max_num_queries
):
    url = reverse("admin:django_jobs_taskpage_task", args=["tests.tasks.add"])
    with django_assert_max_num_queries(9) as captured:
        response = admin_client.get(url)
    (hour, day) = response.context["spans"]
    assert day["failed"] == pytest.approx(665, rel=0.1)
    for span, tolerance in ((hour, 0.01), (day, 0.003)):
        rate = span["failed"] / (span["failed"] + span["succeeded"])
        assert rate == pytest.approx(0.02, abs=tolerance)
    assert_indexed(job_table_plans(captured.captured_queries))
