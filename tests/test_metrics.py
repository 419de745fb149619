"""Prometheus metrics: the database figures, the view, the counters, and the worker's port
with several processes (docs/metrics.md)."""

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from django_jobs.checks.options import check_option_values
from django_jobs.console.metrics import registry
from django_jobs.models import Job, Worker
from django_jobs.tasks_api import task_backends
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from django_jobs.workflows import chain
from tests import tasks
from tests.conftest import ROOT, process_env, renamed_column, wait_for
from tests.console import PASSWORD, make_user

TOKEN = "s3cret-metrics-token-for-tests"


def parse(text: str) -> list[tuple[str, dict, float]]:
    """Every sample of a Prometheus text exposition: (name, labels, value)."""
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples, name: str, **labels) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample, have, value in samples
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


def scrape_registry() -> list:
    return parse(generate_latest(registry(task_backends["default"])).decode())


def call(task, args, kwargs):
    return task.func(*args, **kwargs)


def claim_and_run() -> Attempt:
    backend = task_backends["default"]
    [job] = backend.broker.claim("worker-a", [], 1, timezone.now())
    return run_attempt(Attempt(job, "worker-a", backend), call=call)


def worker_row(name: str, heartbeat_ago: float, stopped: bool = False) -> Worker:
    now = timezone.now()
    return Worker.objects.create(
        id=name,
        hostname="host",
        pid=1,
        started_at=now - timedelta(hours=1),
        last_heartbeat_at=now - timedelta(seconds=heartbeat_ago),
        stopped_at=now if stopped else None,
    )


@pytest.fixture
def metrics_token(settings):
    settings.TASKS = {
        **settings.TASKS,
        "default": {
            **settings.TASKS["default"],
            "OPTIONS": {**settings.TASKS["default"].get("OPTIONS", {}), "metrics_token": TOKEN},
        },
    }
    return TOKEN


# --- the database figures -----------------------------------------------------------------
def test_collector_reports_queue_depth_oldest_ready_age_and_workers_from_the_rows(
    transactional_db,
):
    # Given three ready jobs in emails, the oldest ready for two minutes
    now = timezone.now()
    emails = [tasks.add.using(queue_name="emails").enqueue(i, i) for i in range(3)]
    Job.objects.filter(pk=emails[0].id).update(run_after=now - timedelta(minutes=2))
    # And one job in reports scheduled an hour from now, and one job running in default
    tasks.add.using(queue_name="reports", run_after=now + timedelta(hours=1)).enqueue(1, 1)
    tasks.add.enqueue(1, 2)
    assert task_backends["default"].broker.claim("worker-a", ["default"], 1, timezone.now())
    # And two live workers, one silent for longer than a lease, one stopped
    lease = task_backends["default"].jobs_options.lease_seconds
    worker_row("live-1", 0)
    worker_row("live-2", 1)
    worker_row("stale", lease + 60)
    worker_row("stopped", lease + 60, stopped=True)
    # When the collector is scraped
    samples = scrape_registry()
    # Then each figure is the rows' own
    assert total(samples, "django_jobs_database_up") == 1
    assert total(samples, "django_jobs_queue_depth", queue="emails") == 3
    assert total(samples, "django_jobs_queue_depth", queue="reports") == 0
    assert total(samples, "django_jobs_queue_scheduled", queue="reports") == 1
    assert total(samples, "django_jobs_queue_running", queue="default") == 1
    assert total(samples, "django_jobs_queue_depth", queue="default") == 0
    age = total(samples, "django_jobs_queue_oldest_ready_age_seconds", queue="emails")
    assert 120 <= age < 120 + 60
    assert total(samples, "django_jobs_queue_oldest_ready_age_seconds", queue="reports") == 0
    assert total(samples, "django_jobs_workers", state="live") == 2
    assert total(samples, "django_jobs_workers", state="stale") == 1


def test_collector_lists_the_declared_queues_even_when_idle(transactional_db):
    # Given the test settings' QUEUES and no job at all
    # When the collector is scraped
    samples = scrape_registry()
    # Then each declared queue has a depth of 0 rather than no series
    depths = {labels["queue"]: v for name, labels, v in samples if name.endswith("queue_depth")}
    assert depths == dict.fromkeys(["default", "emails", "reports"], 0)


def test_collector_says_when_it_cannot_read_the_job_tables(transactional_db):
    # Given a schema that no longer matches the code
    with renamed_column("django_jobs_worker", "last_heartbeat_at"):
        # When the collector is scraped
        samples = scrape_registry()
    # Then database_up is 0 and no database figure is made up (queue_wait_seconds is the
    # workers' own histogram, there once this process has claimed a job)
    assert total(samples, "django_jobs_database_up") == 0
    made_up = [
        name
        for name, _, _ in samples
        if name.startswith("django_jobs_queue_")
        and not name.startswith("django_jobs_queue_wait_seconds")
    ]
    assert not made_up


def test_metrics_token_shorter_than_16_characters_is_refused_by_the_check():
    # Given OPTIONS with a short token, and with a long one
    # When the option rules run
    short = check_option_values({"metrics_token": "short"}, "TASKS['default']['OPTIONS']")
    good = check_option_values({"metrics_token": TOKEN}, "TASKS['default']['OPTIONS']")
    # Then only the short one is an error, naming the key
    assert [e.id for e in short] == ["django_jobs.E020"]
    assert "metrics_token" in short[0].msg
    assert good == []


# --- the view -----------------------------------------------------------------------------
def test_view_refuses_anonymous_requests_and_staff_who_may_not_view_jobs(transactional_db):
    # Given an anonymous client and a staff user without the view_job permission
    staff = Client()
    staff.login(username=make_user("staff", "view_worker").username, password=PASSWORD)
    # When each asks for the metrics
    anonymous = Client().get("/metrics")
    refused = staff.get("/metrics")
    # Then the anonymous one is asked for credentials and the staff user is refused
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert refused.status_code == 403


def test_view_serves_staff_who_may_view_jobs(transactional_db):
    # Given a staff user with the view_job permission and a ready job
    viewer = Client()
    viewer.login(username=make_user("viewer", "view_job").username, password=PASSWORD)
    tasks.add.enqueue(1, 1)
    # When the viewer asks for the metrics
    response = viewer.get("/metrics")
    # Then the exposition parses and shows the job
    assert response.status_code == 200
    samples = parse(response.content.decode())
    assert total(samples, "django_jobs_queue_depth", queue="default") == 1


def test_view_serves_the_bearer_token_and_refuses_a_wrong_one(transactional_db, metrics_token):
    # Given a backend with a metrics token
    # When Prometheus asks with the token, and someone asks with another one
    right = Client().get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
    wrong = Client().get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    # Then the first gets the metrics and the second does not
    assert right.status_code == 200
    assert total(parse(right.content.decode()), "django_jobs_database_up") == 1
    assert wrong.status_code == 401


# --- the counters -------------------------------------------------------------------------
def test_enqueues_and_recorded_outcomes_are_counted(transactional_db, metrics_token):
    # Given the counters as they are now
    client = Client(headers={"Authorization": f"Bearer {metrics_token}"})
    before = parse(client.get("/metrics").content.decode())
    # When five add jobs are enqueued (one alone, two in bulk, two steps of a chain) and one
    # always_fails job
    tasks.add.enqueue(1, 1)
    task_backends["default"].enqueue_many([(tasks.add, (2, 2), {}), (tasks.add, (3, 3), {})])
    chain(tasks.add.s(1, 1), tasks.add.s(1)).enqueue()
    tasks.always_fails.enqueue()
    # And one add job succeeds and the always_fails job's first attempt is recorded
    claim_and_run()
    Job.objects.filter(task_path="tests.tasks.add").delete()
    claim_and_run()
    after = parse(client.get("/metrics").content.decode())

    # Then the enqueues are counted by task, and the outcomes by task and outcome
    def grew(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    add, fails = "tests.tasks.add", "tests.tasks.always_fails"
    assert grew("django_jobs_enqueued_total", task=add, queue="default") == 5
    assert grew("django_jobs_enqueued_total", task=fails, queue="default") == 1
    assert grew("django_jobs_finished_total", task=add, outcome="successful") == 1
    assert grew("django_jobs_finished_total", task=fails, outcome="retried") == 1
    assert grew("django_jobs_finished_total", task=fails, outcome="failed") == 0
    assert grew("django_jobs_run_seconds_count", task=add) == 1
    assert grew("django_jobs_run_seconds_count", task=fails) == 1


@pytest.mark.parametrize(
    ("task", "outcome"), [(tasks.snoozes_once, "snoozed"), (tasks.discards, "cancelled")]
)
def test_snoozes_and_discards_are_counted_by_their_outcome(transactional_db, task, outcome):
    # Given one job that snoozes or discards itself, and the counters as they are now
    task.enqueue(*(["no longer needed"] if task is tasks.discards else []))
    before = scrape_registry()
    # When it runs once
    claim_and_run()
    # Then its attempt is counted under that outcome
    after = scrape_registry()
    labels = {"task": task.module_path, "outcome": outcome}
    counted = total(after, "django_jobs_finished_total", **labels)
    assert counted - total(before, "django_jobs_finished_total", **labels) == 1


def test_claims_and_claim_errors_are_counted(make_worker):
    # Given a worker, a ready job, and the counters as they are now
    worker = make_worker()
    tasks.add.enqueue(1, 1)
    before = scrape_registry()
    # When it claims the job, and then claims again on a schema that no longer matches
    assert worker.run_once(timezone.now()) == 1
    wait_for(lambda: not Job.objects.exclude(status="SUCCESSFUL").exists(), message="the job")
    with renamed_column("django_jobs_job", "run_after"):
        assert worker.run_once(timezone.now()) == 0
    after = scrape_registry()

    # Then one start (and its queue wait) and one claim error are counted
    def grew(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("django_jobs_started_total", task="tests.tasks.add", queue="default") == 1
    assert grew("django_jobs_queue_wait_seconds_count", task="tests.tasks.add") == 1
    assert grew("django_jobs_claim_errors_total") == 1


# --- the worker's port --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return parse(response.read().decode())


def scrape_when_up(port: int) -> list:
    def attempt():
        try:
            return scrape(port)
        except OSError:
            return None

    return wait_for(attempt, timeout=30, message="the metrics port")


@pytest.mark.processes
def test_worker_port_adds_up_the_counts_of_every_process(spawn_worker, tmp_path):
    # Given runworker with two processes of one slot each, serving metrics on one port
    port = free_port()
    flags = ["--metrics-port", str(port), "--metrics-addr", "127.0.0.1"]
    worker = spawn_worker("--processes", "2", *flags)
    wait_for(
        lambda: Worker.objects.filter(stopped_at=None).count() == 2,
        timeout=30,
        message="two worker processes",
    )
    assert total(scrape_when_up(port), "django_jobs_workers", state="live") == 2
    # When two jobs that can only finish together run (one in each process), three add jobs,
    # and a job failing its three attempts
    path = tmp_path / "meet.txt"
    results = [tasks.rendezvous.enqueue(str(path), i, 2) for i in range(2)]
    results += [tasks.add.enqueue(i, i) for i in range(3)]
    results.append(tasks.always_fails.enqueue())
    wait_for(
        lambda: all(Job.objects.get(pk=r.id).is_finished for r in results),
        timeout=60,
        message="every job to finish",
    )
    samples = wait_for(
        lambda: (s := scrape(port)) and total(s, "django_jobs_finished_total") == 8 and s,
        timeout=30,
        message=f"8 finished attempts counted\n{worker.output()}",
    )
    # Then both processes ran jobs, and the port counts every attempt of both, once
    rendezvous = Job.objects.filter(task_path="tests.tasks.rendezvous")
    assert len({job.worker_ids[0] for job in rendezvous}) == 2
    assert total(samples, "django_jobs_started_total") == 8
    assert total(samples, "django_jobs_finished_total", outcome="successful") == 5
    assert total(samples, "django_jobs_finished_total", outcome="retried") == 2
    assert total(samples, "django_jobs_finished_total", outcome="failed") == 1
    assert total(samples, "django_jobs_run_seconds_count") == 8
    assert total(samples, "django_jobs_queue_wait_seconds_count") == 8
    assert total(samples, "django_jobs_started_total", task="tests.tasks.rendezvous") == 2
    # And the database figures come with them
    assert total(samples, "django_jobs_queue_depth", queue="default") == 0
    assert total(samples, "django_jobs_workers", state="live") == 2
    worker.signal(signal.SIGTERM)
    assert worker.wait(60) == 0, worker.output()


# --- without the extra --------------------------------------------------------------------
#: Runs manage.py with prometheus_client unimportable, as where the extra is not installed.
WITHOUT_PROMETHEUS = (
    "import runpy, sys; sys.modules['prometheus_client'] = None; "
    "sys.argv = ['manage.py', *sys.argv[1:]]; runpy.run_path('manage.py', run_name='__main__')"
)


def manage_without_prometheus(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_PROMETHEUS, *args],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.processes
def test_workers_run_jobs_without_prometheus_client_and_the_port_says_what_is_missing(
    transactional_db,
):
    # Given two ready jobs, and no prometheus_client in the worker's Python
    results = [tasks.add.enqueue(i, i) for i in range(2)]
    # When a burst worker runs, and a worker is asked for a metrics port
    burst = manage_without_prometheus("runworker", "--burst")
    port = manage_without_prometheus("runworker", "--metrics-port", str(free_port()))
    # Then the jobs ran, and the port was refused with the extra to install
    assert burst.returncode == 0, burst.stderr
    assert {Job.objects.get(pk=r.id).status for r in results} == {"SUCCESSFUL"}
    assert port.returncode != 0
    assert "django-jobs[metrics]" in port.stderr


def test_the_grafana_dashboard_queries_only_metrics_the_app_exposes(transactional_db):
    # Given a scrape after a job ran (so the labelled series exist)
    tasks.add.enqueue(1, 1)
    claim_and_run()
    text = generate_latest(registry(task_backends["default"])).decode()
    families = {family.name for family in text_string_to_metric_families(text)}
    # When the metric names are read from the shipped dashboard
    dashboard = json.loads((ROOT / "docs" / "grafana" / "django-jobs.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = set(re.findall(r"django_jobs_\w+", " ".join(exprs)))
    # Then each is one of the app's families (a counter's _total, a histogram's _bucket...)
    suffixes = re.compile(r"_(total|bucket|sum|count)$")
    assert named
    assert {name for name in named if suffixes.sub("", name) not in families} == set()
