"""Dashboard figures, per-minute counters, and pausing queues."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from django_jobs.console import queries
from django_jobs.jobs import operations, rollup
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, JobMinute, Queue, Worker
from tests import tasks
from tests.conftest import wait_for
from tests.console import failed_job, make_user, set_status

pytestmark = pytest.mark.django_db

DATA = reverse("admin:django_jobs_dashboard_data")


def finished(status: str, at, queue: str = "default", run: float = 1.0, wait: float = 0.5):
    result = tasks.add.using(queue_name=queue).enqueue(1, 2)
    set_status(
        result.id,
        status,
        run_after=at - timedelta(seconds=run + wait),
        last_attempted_at=at - timedelta(seconds=run),
        started_at=at - timedelta(seconds=run),
        finished_at=at,
        attempts=1,
    )
    return result.id


# --- counters -----------------------------------------------------------------------------
def test_rollup_counts_complete_minutes_per_queue_once():
    # Given jobs finished 10 and 9 minutes ago, and one just now (not complete yet)
    now = timezone.now().replace(second=30)
    ten = rollup.floor_minute(now - timedelta(minutes=10))
    finished(JobStatus.SUCCESSFUL, ten + timedelta(seconds=5))
    finished(JobStatus.FAILED, ten + timedelta(seconds=50), queue="emails")
    finished(JobStatus.SUCCESSFUL, ten + timedelta(minutes=1, seconds=1))
    finished(JobStatus.SUCCESSFUL, now)
    # When rolled up twice
    rollup.rollup("default", now)
    rollup.rollup("default", now)
    # Then each complete minute has one total row, and per-queue rows where jobs finished
    total = JobMinute.objects.get(queue_name="", minute=ten)
    assert (total.succeeded, total.failed) == (1, 1)
    assert JobMinute.objects.get(queue_name="emails", minute=ten).failed == 1
    assert JobMinute.objects.filter(queue_name="").count() == 24 * 60
    assert rollup.rolled_until("default") == rollup.floor_minute(now - rollup.LAG)
    # And the job still in a minute not rolled up is counted live by the dashboard
    assert queries.throughput("default", now)["hour"]["finished"] == 4


def test_rollup_keeps_counts_after_jobs_are_purged():
    now = timezone.now()
    finished(JobStatus.SUCCESSFUL, now - timedelta(minutes=5))
    rollup.rollup("default", now)
    operations.purge("default", timedelta(0))
    assert not Job.objects.exists()
    assert queries.throughput("default", now)["hour"]["finished"] == 1


# --- dashboard figures --------------------------------------------------------------------
def test_snapshot_reports_depth_age_running_latency_and_workers():
    now = timezone.now()
    old = tasks.add.enqueue(1, 1)
    set_status(old.id, JobStatus.READY, run_after=now - timedelta(minutes=3))
    tasks.add.using(run_after=now + timedelta(hours=1)).enqueue(1, 1)
    running = tasks.other_queue.enqueue(1)
    set_status(
        running.id, JobStatus.RUNNING, claimed_by="w-live", last_attempted_at=now, attempts=1
    )
    for i in range(10):
        finished(JobStatus.SUCCESSFUL, now - timedelta(minutes=3), run=i + 1, wait=0.5)
    Worker.objects.create(id="w-live", hostname="h", pid=1, started_at=now, last_heartbeat_at=now)
    Worker.objects.create(
        id="w-stale",
        hostname="h",
        pid=2,
        started_at=now,
        last_heartbeat_at=now - timedelta(hours=1),
    )
    # When
    data = queries.snapshot("default", now, stale_after=timedelta(minutes=1))
    # Then
    queues = {q["name"]: q for q in data["queues"]}
    assert (queues["default"]["ready"], queues["default"]["scheduled"]) == (1, 1)
    assert queues["default"]["oldest_ready_age"] == pytest.approx(180, abs=1)
    assert queues["emails"]["running"] == 1
    assert data["latency"]["sample"] == 10
    assert data["latency"]["run"]["p50"] == pytest.approx(6, abs=0.01)
    assert data["latency"]["wait"]["p90"] == pytest.approx(0.5, abs=0.01)
    assert [r["id"] for r in data["running"]] == [running.id]
    workers = {w["id"]: w for w in data["workers"]}
    assert (workers["w-live"]["stale"], workers["w-live"]["running"]) == (False, 1)
    assert workers["w-stale"]["stale"] is True
    assert data["throughput"]["hour"]["finished"] == 10
    assert data["throughput"]["hour"]["failure_rate"] == 0


def test_dashboard_page_is_linked_from_the_admin_index_and_answers_json(admin_client):
    failed_job("x")
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:django_jobs_dashboard_changelist") in index
    page = admin_client.get(reverse("admin:django_jobs_dashboard_changelist"))
    assert page.status_code == 200
    assert "django_jobs/dashboard.js" in page.content.decode()
    data = admin_client.get(DATA).json()
    assert data["throughput"]["hour"]["failure_rate"] == 1.0


def test_dashboard_data_answers_in_a_bounded_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    for i in range(20):
        failed_job(i)
        tasks.add.enqueue(i, i)
    admin_client.get(DATA)  # the first call rolls up the day
    # 15, plus up to 5 if a minute completed in between and is rolled up (clock-independent)
    with django_assert_max_num_queries(20):
        admin_client.get(DATA)


# --- pause / resume -----------------------------------------------------------------------
def test_pause_from_the_dashboard_is_logged_and_shown(admin_client):
    response = admin_client.post(
        reverse("admin:django_jobs_dashboard_queue"),
        {"queue": "emails", "action": "pause"},
        headers={"accept": "application/json"},
    )
    assert response.json() == {"queue": "emails", "paused": True}
    queues = {q["name"]: q for q in admin_client.get(DATA).json()["queues"]}
    assert queues["emails"]["paused"] is True
    admin_client.post(
        reverse("admin:django_jobs_dashboard_queue"), {"queue": "emails", "action": "resume"}
    )
    assert Queue.objects.get(pk="emails").paused is False


def test_jobs_command_pauses_and_resumes_a_queue():
    call_command("jobs", "pause", "emails", stdout=None)
    assert operations.paused_queues("default") == {"emails"}
    call_command("jobs", "resume", "emails", stdout=None)
    assert operations.paused_queues("default") == frozenset()


def test_claim_skips_paused_queues():
    from django_jobs.tasks_api import task_backends

    broker = task_backends["default"].broker
    tasks.other_queue.enqueue(1)
    default = tasks.add.enqueue(1, 2)
    broker.set_paused(frozenset({"emails"}))
    try:
        claimed = broker.claim("w", [], 10, timezone.now())
    finally:
        broker.set_paused(frozenset())
    assert [str(j.pk) for j in claimed] == [default.id]


def test_read_only_user_cannot_pause(client):
    make_user("viewer", "view_job")
    client.login(username="viewer", password="correct horse battery staple")
    response = client.post(
        reverse("admin:django_jobs_dashboard_queue"), {"queue": "emails", "action": "pause"}
    )
    assert response.status_code == 403
    assert not Queue.objects.exists()


@pytest.mark.processes
def test_a_running_worker_stops_claiming_from_a_paused_queue_until_resumed(spawn_worker):
    # Given a paused queue with a job waiting, enqueued before a job on another queue
    operations.pause_queue("default", "emails")
    paused_job = tasks.other_queue.enqueue("later")
    spawn_worker("--concurrency", "1")
    first = tasks.add.enqueue(1, 2)
    # When the worker has run the job it may run
    wait_for(lambda: Job.objects.get(pk=first.id).status == JobStatus.SUCCESSFUL)
    # Then the paused queue's job is still waiting
    assert Job.objects.get(pk=paused_job.id).status == JobStatus.READY
    # And once resumed it runs (the worker refreshes the paused set every heartbeat)
    operations.resume_queue("default", "emails")
    wait_for(lambda: Job.objects.get(pk=paused_job.id).status == JobStatus.SUCCESSFUL)
    # And its heartbeat rolled the per-minute counters up (no query per job for that)
    assert JobMinute.objects.filter(queue_name="").exists()
