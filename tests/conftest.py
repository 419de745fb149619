"""Shared fixtures: real worker processes against the test database."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.db import OperationalError, connection

import tests.tasks  # noqa: F401  (declares the test tasks in this process too)

ROOT = Path(__file__).resolve().parent.parent

#: The options this test run gives every backend (e.g. the Redis broker for "default").
BASE_OPTIONS = json.loads(os.environ.get("JOBS_OPTIONS") or "{}")

#: The queues the test settings declare, as users do (testproject/settings.py: JOBS_QUEUES).
QUEUES = ["default", "emails", "reports"]

#: Short leases so crash-rescue tests finish in seconds.
FAST_OPTIONS = {
    "task_modules": ["tests.tasks"],
    "lease_seconds": 3,
    "heartbeat_interval": 0.5,
    "poll_interval": 0.2,
}


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


def worker_database_url() -> str:
    """DATABASE_URL of the database the tests run on (the test DB, not the dev one)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path="/" + settings["NAME"]))


def process_env(options: dict | None = None, database_url: str = "", **extra: str) -> dict:
    """The environment of a real worker or beat process on the test database."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url or worker_database_url(),
        "JOBS_OPTIONS": json.dumps({**BASE_OPTIONS, **FAST_OPTIONS, **(options or {})}),
        "JOBS_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        # FAST_OPTIONS' 3 s lease (quick rescues) with the default 30 s grace: W002 by design.
        "SILENCED_SYSTEM_CHECKS": "django_jobs.W002",
        **extra,
    }
    env.pop("TEST_DATABASE_NAME", None)
    return env


class ManageProcess:
    """A real ``manage.py <args>`` process (its own session, so it can be killed whole)."""

    def __init__(self, args, env, log: Path):
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> list[int]:
        """Pids of the processes it forked (a supervisor's workers and beat)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except FileNotFoundError:
            return []

    def signal(self, signum) -> None:
        self.proc.send_signal(signum)

    def kill_all(self) -> None:
        """SIGKILL the supervisor and every worker process: a host lost, an OOM kill."""
        pids = [self.pid, *self.children()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            for pid in [self.pid, *self.children()]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(10)
        self._log.close()


class WorkerHandle(ManageProcess):
    """A real ``manage.py runworker`` process."""

    def __init__(self, args, env, log: Path):
        super().__init__(["runworker", *args], env, log)


@pytest.fixture
def spawn_worker(transactional_db, tmp_path):
    """Start real runworker processes on the test database; all are killed at teardown."""
    handles: list[WorkerHandle] = []

    def spawn(
        *args: str,
        options: dict | None = None,
        database_url: str = "",
        queues: list[str] | None = None,
    ) -> WorkerHandle:
        """``queues``: the QUEUES of the worker's settings (default: the test settings')."""
        extra = {} if queues is None else {"JOBS_QUEUES": json.dumps(queues)}
        env = process_env(options, database_url, **extra)
        handle = WorkerHandle(args, env, tmp_path / f"worker-{len(handles)}.log")
        handles.append(handle)
        return handle

    yield spawn
    for handle in handles:
        handle.stop()


@pytest.fixture
def fast_backend(settings):
    """The default backend with the short leases the process tests use."""
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": QUEUES,
            "OPTIONS": {"broker": "database", **FAST_OPTIONS},
        }
    }
    from django_jobs.tasks_api import task_backends

    return task_backends["default"]


def redis_url() -> str:
    """REDIS_URL, or skip (fail in CI: the postgresql+redis run must really test Redis)."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("REDIS_URL is not set, and CI must run the Redis tests")
        pytest.skip("REDIS_URL is not set (e.g. REDIS_URL=redis://127.0.0.1:6379/7)")
    return url


def pytest_configure(config):
    """Hash the test users' passwords cheaply: Django's default PBKDF2 (over a million rounds)
    cost about a second of CPU per user made and per login, and the suite makes hundreds."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


#: The threads an in-process worker starts besides its slots (each holds a connection).
BACKGROUND_THREADS = ("django-jobs-heartbeat", "django-jobs-listen", "django-jobs-completer")


@pytest.fixture
def make_worker(transactional_db, fast_backend, settings):
    """Start in-process WorkerProcesses on the fast backend (``options``: more OPTIONS for
    it); stop and close them at teardown."""
    from django_jobs.worker.process import WorkerProcess

    started: list = []

    def make(options: dict | None = None, **kwargs):
        if options:
            settings.TASKS = {
                "default": {
                    "BACKEND": "django_jobs.backend.JobsBackend",
                    "QUEUES": QUEUES,
                    "OPTIONS": {"broker": "database", **FAST_OPTIONS, **options},
                }
            }
        worker = WorkerProcess(**kwargs)
        worker.start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()
        worker._close()
    # The heartbeat and LISTEN threads hold connections: let them go before the DB is reset.
    wait_for(
        lambda: not any(t.name in BACKGROUND_THREADS for t in threading.enumerate()),
        timeout=15,
        message="worker background threads to stop",
    )


@pytest.fixture(autouse=True)
def _needs_redis(request):
    """Tests marked ``redis`` skip without REDIS_URL (outside CI) and fail if it is down."""
    if request.node.get_closest_marker("redis") is None:
        return
    url = redis_url()
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.fail(f"Redis at {url} is unreachable: {e!r}")
    finally:
        client.close()


@pytest.fixture
def redis_db():
    """A client on REDIS_URL's database, emptied (FLUSHDB: that database only) before use."""
    client = redis.Redis.from_url(redis_url())
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def redis_backend(settings, redis_db):
    """The "redis" backend on an empty Redis database, with the process tests' short leases."""
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": QUEUES,
            "OPTIONS": {"broker": "database", **FAST_OPTIONS},
        },
        "redis": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": QUEUES,
            "OPTIONS": {"broker": "redis", "redis_url": redis_url(), **FAST_OPTIONS},
        },
    }
    from django_jobs.tasks_api import task_backends

    return task_backends["redis"]


#: Backend aliases that behaviour tests run on; "redis" needs REDIS_URL (see ``_needs_redis``).
BACKENDS = ["default", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
def backend_alias(request) -> str:
    """Run a behaviour test on the database broker and on the Redis broker (emptied first)."""
    if request.param == "redis":
        request.getfixturevalue("redis_db")
    return request.param


def max_overlap(intervals) -> int:
    """The largest number of (start, end) intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    open_, most = 0, 0
    for _, step in events:
        open_ += step
        most = max(most, open_)
    return most


def pytest_collection_modifyitems(config, items):
    """Every test that starts real workers is a process test (``-m processes`` selects them)."""
    for item in items:
        if "spawn_worker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.processes)


def copy_job(job_id, count: int) -> None:
    """Insert ``count`` copies of job ``job_id`` (new ids, every other field the same)."""
    from django_jobs.models import Job

    job = Job.objects.get(pk=job_id)
    fields = [f.attname for f in Job._meta.fields if not f.primary_key]
    Job.objects.bulk_create(
        Job(id=uuid.uuid4(), **{name: getattr(job, name) for name in fields}) for _ in range(count)
    )


@contextmanager
def renamed_column(table: str, column: str):
    """Rename ``table.column`` for the duration (the code no longer matches the schema)."""
    quote = connection.ops.quote_name
    broken = f"{column}_broken"
    rename = "ALTER TABLE {} RENAME COLUMN {} TO {}"
    _alter(rename.format(quote(table), quote(column), quote(broken)))
    try:
        yield
    finally:
        _alter(rename.format(quote(table), quote(broken), quote(column)))


def _alter(sql: str, attempts: int = 3) -> None:
    """Run the helper's DDL. MariaDB once refused a JSON column's rename under CI load with
    "Unknown column … in 'CHECK'" (the column's own check constraint), though the same rename
    passes alone: that refusal is tried again, twice, before it fails the test."""
    for attempt in range(1, attempts + 1):
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
            return
        except OperationalError as e:
            if attempt == attempts or "in 'CHECK'" not in str(e):
                raise
            time.sleep(0.5)
