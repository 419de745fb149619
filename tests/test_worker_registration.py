"""A live worker whose row is deleted (admin, ``jobs prune-workers``) registers again."""

import json
from io import StringIO

from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs.console import queries
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from tests import tasks
from tests.conftest import FAST_OPTIONS, wait_for
from tests.console import PASSWORD, make_user

#: Heartbeats a worker gets to notice its row is gone and write it again.
FEW_HEARTBEATS = 10 * FAST_OPTIONS["heartbeat_interval"] + 5


def running_job(path, seconds: float):
    """Enqueue a job that outlives a lease unless its heartbeats renew it; wait until it runs."""
    result = tasks.record_then_sleep.enqueue(str(path), 1, seconds)
    job = Job.objects.filter(pk=result.id)
    wait_for(lambda: job.filter(status=JobStatus.RUNNING).exists(), 30, message="the job to run")
    return job.get()


def live_workers() -> int:
    out = StringIO()
    call_command("jobs", "stats", "--json", stdout=out)
    return json.loads(out.getvalue())["live_workers"]


def assert_registered_again(worker_id: str, deleted_at, handle) -> Worker:
    """The same worker id is back, heartbeating after the deletion."""
    again = Worker.objects.filter(pk=worker_id, last_heartbeat_at__gt=deleted_at)
    row = wait_for(lambda: again.first(), FEW_HEARTBEATS, message="the worker to register again")
    assert row.stopped_at is None
    assert "registered again" in handle.output(), handle.output()
    return row


def test_worker_whose_row_is_deleted_registers_again_and_keeps_its_jobs(
    fast_backend, spawn_worker, tmp_path
):
    # Given a worker running a job that lasts longer than a lease
    handle = spawn_worker("--concurrency", "2")
    job = running_job(tmp_path / "ran.txt", 3 * FAST_OPTIONS["lease_seconds"])
    worker_id = job.claimed_by
    # When its row is deleted through the ORM (what the admin and prune-workers do)
    deleted_at = timezone.now()
    Worker.objects.filter(pk=worker_id).delete()
    # Then it registers again under the same id within a few heartbeats
    row = assert_registered_again(worker_id, deleted_at, handle)
    assert (row.concurrency, row.started_at < deleted_at) == (2, True)
    # And it is counted live by `jobs stats` and the dashboard
    assert live_workers() == 1
    rows = queries.workers("default", timezone.now(), fast_backend.jobs_options.lease)
    assert [(r["id"], r["stale"], r["running"]) for r in rows] == [(worker_id, False, 1)]
    # And its running job stays fenced to it: leases renewed, one attempt, finished by it
    renewed = Job.objects.filter(pk=job.pk, claimed_by=worker_id, lease_expires_at__gt=deleted_at)
    wait_for(lambda: renewed.exists(), FEW_HEARTBEATS, message="the lease to be renewed")
    done = Job.objects.filter(pk=job.pk, status=JobStatus.SUCCESSFUL)
    wait_for(lambda: done.exists(), 60, message="the job to finish")
    assert (done.get().attempts, done.get().worker_ids) == (1, [worker_id])


def test_worker_deleted_in_the_admin_registers_again(fast_backend, spawn_worker, tmp_path):
    # Given a live worker running a job, and an operator in the admin
    handle = spawn_worker()
    job = running_job(tmp_path / "ran.txt", 2 * FAST_OPTIONS["lease_seconds"])
    client = Client()
    assert client.login(username=make_user("operator", superuser=True).username, password=PASSWORD)
    # When the operator deletes the worker's row with the admin's delete view
    deleted_at = timezone.now()
    page = reverse("admin:django_jobs_worker_delete", args=[job.claimed_by])
    response = client.post(page, {"post": "yes"})
    assert response.status_code == 302
    # Then the worker comes back under its id, counted live, and finishes the job
    assert_registered_again(job.claimed_by, deleted_at, handle)
    assert live_workers() == 1
    done = Job.objects.filter(pk=job.pk, status=JobStatus.SUCCESSFUL, attempts=1)
    wait_for(lambda: done.exists(), 60, message="the job to finish")
