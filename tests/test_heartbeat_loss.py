"""A worker whose heartbeats keep failing stops itself instead of running on unregistered."""

from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection, connections

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from tests import tasks
from tests.conftest import wait_for, worker_database_url

pytestmark = pytest.mark.processes


@pytest.fixture
def impatient_role(transactional_db):
    """A PostgreSQL role that gives up waiting for a row lock after 100 ms (``lock_timeout``)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs a PostgreSQL role's lock_timeout to make only the heartbeat fail")
    role = f"djjobs_nobeat_{connection.settings_dict['NAME']}"[:63]
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"') if _role_exists(cursor, role) else None
        cursor.execute(f'DROP ROLE IF EXISTS "{role}"')
        cursor.execute(f'CREATE ROLE "{role}" LOGIN')
        cursor.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"')
        cursor.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
        cursor.execute(f"ALTER ROLE \"{role}\" SET lock_timeout = '100ms'")
    url = urlsplit(worker_database_url())
    yield urlunsplit(url._replace(netloc=f"{role}@{url.hostname}:{url.port or 5432}"))
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE IF EXISTS "{role}"')


def _role_exists(cursor, role: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    return cursor.fetchone() is not None


def test_worker_stops_itself_when_its_heartbeats_keep_failing(spawn_worker, impatient_role):
    # Given a worker that claims and runs jobs
    worker = spawn_worker("--concurrency", "1", database_url=impatient_role)
    first = tasks.add.enqueue(1, 2)
    wait_for(
        lambda: Job.objects.filter(pk=first.id, status=JobStatus.SUCCESSFUL).exists(),
        message="the worker runs jobs",
    )
    # When another session holds its worker row locked, so that every heartbeat gives up
    # waiting (a lock timeout: an error retrying can mend, so the worker retries it)
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM django_jobs_worker FOR UPDATE")
        # Then after about a lease (3 s in the tests) of failures the worker process stops
        # itself with the "lost" exit status, and the supervisor replaces it
        wait_for(lambda: "heartbeats failing" in worker.output(), timeout=30)
        wait_for(lambda: "code=70" in worker.output(), timeout=30, message=worker.output())
        assert "retrying cannot mend" not in worker.output()
    finally:
        other.close()
