"""Restart the shared PostgreSQL server under a running worker.

Every other session on the server is cut off too: run this module alone
(``pytest -m disruptive``), never next to other test runs.
"""

import os
import shutil
import subprocess

import pytest
from django.db import connection

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Worker
from tests import tasks
from tests.conftest import wait_for
from tests.test_processes import has_status, job_of, live_worker

pytestmark = [
    pytest.mark.disruptive,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="restarts a PostgreSQL server; PostgreSQL only"
    ),
    pytest.mark.skipif(
        not shutil.which("pg_ctlcluster") or not os.path.isdir("/etc/postgresql"),
        reason="needs a local Debian-style PostgreSQL cluster (pg_ctlcluster)",
    ),
]


def restart_postgresql() -> None:
    """Restart the local cluster (fast shutdown), wait until it accepts connections again."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        timeout=120,
    )
    host = connection.settings_dict["HOST"] or "localhost"
    port = str(connection.settings_dict["PORT"] or 5432)
    wait_for(
        lambda: subprocess.run(["pg_isready", "-q", "-h", host, "-p", port]).returncode == 0,
        timeout=60,
        interval=0.5,
        message="PostgreSQL to accept connections",
    )
    connection.close()  # this test's own session died with the server


def test_worker_survives_a_postgresql_restart_and_wakes_on_notify_again(spawn_worker):
    # Given a worker that only wakes early on NOTIFY (its poll interval is longer than every
    # deadline below), with a lease that outlives the restart, and that has run a job
    worker = spawn_worker(options={"poll_interval": 60, "lease_seconds": 120})
    row = live_worker(worker)
    before = tasks.add.enqueue(1, 1)
    wait_for(has_status(before, JobStatus.SUCCESSFUL), timeout=30, message="a first job")
    # When PostgreSQL restarts under it and a job is enqueued afterwards
    restart_postgresql()
    after = tasks.add.enqueue(2, 2)
    # Then the same, still running worker process runs it: its connections and its LISTEN
    # session came back on their own
    wait_for(has_status(after, JobStatus.SUCCESSFUL), timeout=45, message="the job after")
    assert job_of(after).worker_ids == [row.pk]
    # And a NOTIFY still wakes it for the next job
    later = tasks.add.enqueue(3, 3)
    wait_for(has_status(later, JobStatus.SUCCESSFUL), timeout=45, message="a later job")
    assert job_of(later).worker_ids == [row.pk]
    assert worker.proc.poll() is None, worker.output()
    assert worker.children() == [row.pid]
    assert Worker.objects.count() == 1
    assert "LISTEN connection lost" in worker.output()
