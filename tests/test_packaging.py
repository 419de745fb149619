"""Packaging: the app needs Django and croniter only; drivers, Redis and the suite are extras.

The clean-virtualenv test (marker ``packaging``) runs in its own row of scripts/test.sh: it
builds a fresh venv the way ``make demo`` does (scripts/lib.sh ``ensure_venv demo``), with pip
reaching the package registry (its cache is reused), and runs the demo's set-up path in it.
The other tests here block the optional imports inside the suite's own environment.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from django_jobs.brokers import get_broker
from django_jobs.tasks_api import task_backends

ROOT = Path(__file__).resolve().parent.parent
#: Distributions the demo must not pull in: database drivers, Redis, the browser driver.
NOT_FOR_THE_DEMO = ["psycopg", "psycopg-binary", "redis", "mysqlclient", "playwright"]
#: The environment of a child process on the demo's SQLite database, without the suite's
#: DATABASE_URL, REDIS_URL or JOBS_OPTIONS.
SUITE_VARIABLES = ("DATABASE_URL", "TEST_DATABASE_NAME", "REDIS_URL", "JOBS_OPTIONS")


def demo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SUITE_VARIABLES}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    env["JOBS_SCHEDULES"] = "{}"
    env.update(extra)
    return env


def run(args, *, env, cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stderr}"
    return result


def redis_backend(settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": [],
            "OPTIONS": {"broker": "redis", "redis_url": "redis://127.0.0.1:6379/0"},
        }
    }
    return task_backends["default"]


@pytest.mark.django_db
def test_redis_broker_without_the_redis_package_is_a_check_error(settings, monkeypatch):
    # Given the redis broker configured, and redis-py not importable
    backend = redis_backend(settings)
    monkeypatch.setitem(sys.modules, "redis", None)
    # When the backend is checked, deployment checks included
    messages = [m for m in backend.check() if m.id != "django_jobs.W001"]
    deploy = checks.run_checks(include_deployment_checks=True)
    # Then one error says which package to install, and nothing raised
    assert [m.id for m in messages] == ["django_jobs.E008"]
    assert "django-jobs[redis]" in messages[0].hint
    assert not [m for m in deploy if m.id == "django_jobs.W007"]


def test_redis_broker_without_the_redis_package_fails_with_a_clear_error(settings, monkeypatch):
    # Given the redis broker configured, and redis-py not importable
    backend = redis_backend(settings)
    for name in [m for m in sys.modules if m.startswith("django_jobs.brokers.")]:
        if "redis" in name or name.endswith(".fallback"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)
    # When a worker or enqueue asks for the broker
    # Then the error names the extra to install
    with pytest.raises(ImproperlyConfigured, match=r"django-jobs\[redis\]"):
        get_broker(backend)


BLOCKED_IMPORTS = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"psycopg", "psycopg2", "redis", "MySQLdb"}:
                raise ModuleNotFoundError(f"blocked: {name}", name=name)

    sys.meta_path.insert(0, Block())
    import django
    django.setup()
    import django_jobs
    skipped = ("django_jobs.brokers.redis", "django_jobs.brokers.fallback")
    for module in pkgutil.walk_packages(django_jobs.__path__, "django_jobs."):
        if not module.name.startswith(skipped):
            importlib.import_module(module.name)
    from django.core.management import call_command
    call_command("check", fail_level="WARNING")
    print("imported without psycopg, redis and MySQLdb")
    """
)


def test_the_app_imports_and_checks_without_psycopg_and_redis(tmp_path):
    # Given a Python where psycopg, redis and MySQLdb cannot be imported, on SQLite
    env = demo_env(tmp_path, DJANGO_SETTINGS_MODULE="testproject.settings", JOBS_QUEUES="[]")
    # When every module of the app (but the Redis broker's) is imported and the checks run
    result = run([sys.executable, "-c", BLOCKED_IMPORTS], env=env, timeout=120)
    # Then nothing asked for them
    assert "imported without psycopg, redis and MySQLdb" in result.stdout


@pytest.mark.packaging
@pytest.mark.timeout(600)  # a fresh virtualenv and pip install, beside every other CI run
def test_demo_set_up_in_a_clean_virtualenv(tmp_path):
    # Given a fresh virtualenv made by the demo's own set-up (ensure_venv demo), on a machine
    # where apt-get, dpkg and sudo only leave a trace
    venv = tmp_path / "venv"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    trace = tmp_path / "apt-was-called"
    for tool in ("apt-get", "dpkg", "sudo"):
        (fake_bin / tool).write_text(f'#!/bin/sh\necho "$0 $*" >>"{trace}"\nexit 1\n')
        (fake_bin / tool).chmod(0o755)
    env = demo_env(tmp_path, VENV=str(venv), PATH=f"{fake_bin}:{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    run(["bash", "-c", "source scripts/lib.sh && ensure_venv demo"], env=env, timeout=600)
    python = str(venv / "bin" / "python")

    # Then neither apt nor the suite's packages came in
    assert not trace.exists(), trace.read_text()
    installed = json.loads(run([python, "-m", "pip", "list", "--format=json"], env=env).stdout)
    names = {package["name"].lower() for package in installed}
    assert {"django", "croniter", "django-environ", "django-jobs"} <= names
    assert names.isdisjoint(NOT_FOR_THE_DEMO), sorted(names)

    # When the demo's set-up path runs in it: migrate, check, one demo job through a worker
    manage = [python, "manage.py"]
    run([*manage, "migrate", "--noinput", "-v", "0"], env=env)
    run([*manage, "check", "--fail-level", "WARNING"], env=env)
    enqueue = "from testproject.demo.tasks import add; print(add.enqueue(40, 2).id)"
    job_id = run([*manage, "shell", "-v", "0", "-c", enqueue], env=env).stdout.strip()
    run([*manage, "runworker", "--burst", "--processes", "1", "--concurrency", "2"], env=env)

    # Then the job ran
    read = (
        "from django_jobs.models import Job; "
        f"job = Job.objects.get(pk='{job_id}'); print(job.status, job.return_value)"
    )
    assert run([*manage, "shell", "-v", "0", "-c", read], env=env).stdout.split() == [
        "SUCCESSFUL",
        "42",
    ]

    # And the redis broker, configured without its package, is one check error, not a traceback
    redis_env = {**env, "JOBS_OPTIONS": '{"broker": "redis", "redis_url": "redis://h:6379/0"}'}
    check = subprocess.run(
        [*manage, "check"], cwd=ROOT, env=redis_env, capture_output=True, text=True, timeout=120
    )
    assert check.returncode != 0
    assert "django_jobs.E008" in check.stderr and "Traceback" not in check.stderr
