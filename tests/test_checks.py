"""System checks: a misconfigured backend shows up in ``manage.py check`` with a hint."""

import os

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_jobs.tasks_api import task_backends

# Model checks (JSONField support) ask the database for its features.
pytestmark = pytest.mark.django_db


def configure(settings, **options):
    """Point TASKS['default'] at a JobsBackend with ``options``; return the backend."""
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": [],
            "OPTIONS": options,
        }
    }
    return task_backends["default"]


def jobs_messages() -> list[checks.CheckMessage]:
    """django-jobs' messages, without W020 for the test suite's own tasks (tests/ is no app:
    a worker finds them only through task_modules, which these tests leave out)."""
    return [
        m
        for m in checks.run_checks()
        if m.id and m.id.startswith("django_jobs.") and not suite_tasks_warning(m)
    ]


def suite_tasks_warning(message) -> bool:
    return message.id == "django_jobs.W020" and "in module 'tests." in message.msg


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


def test_project_configuration_passes_checks():
    # Given the test project's own settings
    # When the system checks run
    # Then django-jobs has nothing to report
    assert jobs_messages() == []


def test_valid_options_pass(settings):
    # Given a backend with every option set to a sane value
    backend = configure(
        settings,
        broker="database",
        database="default",
        lease_seconds=30,
        heartbeat_interval=15,
        poll_interval=0.5,
        shutdown_timeout=10,
        default_max_attempts=3,
        task_modules=["tests.tasks"],
    )
    # When it is checked
    # Then nothing is reported
    assert [m for m in backend.check() if m.id != "django_jobs.W001"] == []


def test_unknown_option_key_is_an_error(settings):
    # Given a typo in OPTIONS
    configure(settings, brokr="database", lease=30)
    # When the system checks run
    messages = jobs_messages()
    # Then E001 names both unknown keys and lists the known ones
    assert ids(messages) == ["django_jobs.E001"]
    assert "brokr" in messages[0].msg and "lease" in messages[0].msg
    assert "lease_seconds" in messages[0].hint
    assert messages[0].is_serious()


def test_unknown_broker_is_an_error(settings):
    # Given a broker name we do not have
    backend = configure(settings, broker="rabbitmq")
    # When the backend is checked
    messages = backend.check()
    # Then E002 names it and lists the brokers there are
    assert ids(messages) == ["django_jobs.E002"]
    assert "rabbitmq" in messages[0].msg
    assert "database" in messages[0].hint and "redis" in messages[0].hint


def test_redis_broker_without_url_is_an_error(settings):
    # Given the redis broker with no redis_url
    backend = configure(settings, broker="redis")
    # When the backend is checked
    # Then E003 says what to set
    messages = backend.check()
    assert ids(messages) == ["django_jobs.E003"]
    assert "redis_url" in messages[0].hint


@pytest.mark.redis
def test_redis_broker_with_a_reachable_url_passes(settings):
    # Given the redis broker with the URL of a running Redis
    backend = configure(settings, broker="redis", redis_url=os.environ["REDIS_URL"])
    # When the backend is checked, and the deployment checks run (they ping Redis)
    deploy = checks.run_checks(include_deployment_checks=True)
    # Then there is nothing to report
    assert [m for m in backend.check() if m.id != "django_jobs.W001"] == []
    assert [m for m in deploy if m.id == "django_jobs.W007"] == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "127.0.0.1:6379", "redis://h:port/0"])
def test_malformed_redis_url_is_an_error(settings, url):
    # Given a redis_url that redis-py cannot parse
    backend = configure(settings, broker="redis", redis_url=url)
    # When the backend is checked
    messages = [m for m in backend.check() if m.id != "django_jobs.W001"]
    # Then E006 shows the URL forms that work
    assert ids(messages) == ["django_jobs.E006"]
    assert "rediss://" in messages[0].hint


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1/0", "rediss://:secret@127.0.0.1:1/0", "unix:///nonexistent.sock"]
)
def test_unreachable_redis_is_only_a_deployment_warning(settings, url):
    # Given a well-formed redis_url (TLS and password forms too) where no Redis answers
    backend = configure(settings, broker="redis", redis_url=url)
    # When the checks every command runs, then the deployment checks, run
    plain = [m for m in backend.check() if m.id != "django_jobs.W001"]
    deploy = [
        m
        for m in checks.run_checks(include_deployment_checks=True)
        if m.id
        and m.id.startswith("django_jobs.")
        and m.id != "django_jobs.W001"
        and not suite_tasks_warning(m)
    ]
    # Then only `check --deploy` pings Redis, and W007 warns (workers fall back to the database)
    assert plain == []
    assert [(m.id, m.level) for m in deploy] == [("django_jobs.W007", checks.WARNING)]
    assert "unreachable" in deploy[0].msg


def test_unknown_database_alias_is_an_error(settings):
    # Given a database alias that is not in DATABASES
    configure(settings, database="jobs")
    # When the system checks run
    messages = jobs_messages()
    # Then E004 names it and lists the aliases there are
    assert ids(messages) == ["django_jobs.E004"]
    assert "'jobs'" in messages[0].msg
    assert "default" in messages[0].hint


@pytest.mark.parametrize(("lease", "heartbeat"), [(10, 6), (10, 10), (3, 20)])
def test_heartbeat_longer_than_half_the_lease_is_an_error(settings, lease, heartbeat):
    # Given heartbeats so rare that a lease could run out between two of them
    backend = configure(
        settings, lease_seconds=lease, heartbeat_interval=heartbeat, shutdown_timeout=1
    )
    # When the backend is checked
    messages = [m for m in backend.check() if m.id != "django_jobs.W001"]
    # Then E005 explains the relation
    assert ids(messages) == ["django_jobs.E005"]
    assert str(heartbeat) in messages[0].msg and str(lease) in messages[0].msg


def test_heartbeat_of_exactly_half_the_lease_passes(settings):
    # Given a heartbeat at exactly half the lease
    backend = configure(settings, lease_seconds=10, heartbeat_interval=5)
    # When the backend is checked
    # Then it is accepted
    assert "django_jobs.E005" not in ids(backend.check())


@pytest.mark.parametrize(("lease", "shutdown"), [(30, 30), (30, 60)])
def test_shutdown_timeout_not_shorter_than_the_lease_is_a_warning(settings, lease, shutdown):
    # Given a grace period at least as long as the lease
    backend = configure(settings, lease_seconds=lease, shutdown_timeout=shutdown)
    # When the backend is checked
    messages = [m for m in backend.check() if m.id != "django_jobs.W001"]
    # Then W002 warns, naming both values
    assert ids(messages) == ["django_jobs.W002"]
    assert messages[0].level == checks.WARNING
    assert f"({shutdown}s)" in messages[0].msg and f"({lease}s)" in messages[0].msg


def test_shutdown_timeout_shorter_than_the_lease_passes(settings):
    # Given the defaults' shape: a grace period shorter than the lease
    backend = configure(settings, lease_seconds=60, shutdown_timeout=30)
    # When the backend is checked
    # Then there is no W002
    assert "django_jobs.W002" not in ids(backend.check())


def test_several_problems_are_all_reported(settings):
    # Given a backend with an unknown key, an unknown broker and a bad heartbeat
    backend = configure(
        settings, colour="blue", broker="kafka", lease_seconds=2, heartbeat_interval=5
    )
    # When it is checked
    # Then each problem has its own message
    assert {"django_jobs.E001", "django_jobs.E002", "django_jobs.E005"} <= set(ids(backend.check()))


def test_manage_py_check_fails_on_an_error(settings):
    # Given a misconfigured backend
    configure(settings, broker="rabbitmq")
    # When `manage.py check` runs
    # Then it fails, naming the check
    with pytest.raises(SystemCheckError, match="django_jobs.E002"):
        call_command("check")


def lite_database(tmp_path, **options) -> dict:
    entry = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "lite.sqlite3")}
    if options:
        entry["OPTIONS"] = options
    return entry


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_sqlite_without_immediate_transactions_is_a_warning(settings, tmp_path):
    # Given jobs stored in an SQLite database without transaction_mode IMMEDIATE
    settings.DATABASES = {**settings.DATABASES, "lite": lite_database(tmp_path)}
    configure(settings, database="lite")
    # When the system checks run
    messages = jobs_messages()
    # Then W001 recommends the settings that avoid "database is locked"
    assert ids(messages) == ["django_jobs.W001"]
    assert messages[0].level == checks.WARNING
    assert not messages[0].is_serious()
    assert "IMMEDIATE" in messages[0].hint


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_sqlite_with_other_transaction_mode_is_a_warning(settings, tmp_path):
    # Given SQLite OPTIONS that set a transaction mode other than IMMEDIATE
    lite = lite_database(tmp_path, transaction_mode="DEFERRED", timeout=30)
    settings.DATABASES = {**settings.DATABASES, "lite": lite}
    backend = configure(settings, database="lite")
    # When the backend is checked
    # Then W001 is reported
    assert ids(backend.check()) == ["django_jobs.W001"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize("mode", ["IMMEDIATE", "immediate"])
def test_sqlite_with_immediate_transactions_passes(settings, tmp_path, mode):
    # Given SQLite configured with IMMEDIATE transactions
    settings.DATABASES = {
        **settings.DATABASES,
        "lite": lite_database(tmp_path, transaction_mode=mode),
    }
    backend = configure(settings, database="lite")
    # When the backend is checked
    # Then there is no warning
    assert backend.check() == []


# --- OPTIONS value types and ranges (E020, E021) -------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "hint"),
    [
        ("task_modules", "mysite.jobs", "a list of module names"),
        ("lease_seconds", "60", "a number of seconds > 0"),
        ("default_max_attempts", 0, "a whole number >= 1"),
        ("poll_interval", -1, "None or a number of seconds > 0"),
        ("heartbeat_interval", None, "a number of seconds > 0"),
        ("shutdown_timeout", -5, "a number of seconds >= 0"),
        ("relaxed_commits", "yes", "True or False"),
        ("broker", 5, '"database" or "redis"'),
        ("database", ["default"], "a DATABASES alias"),
        ("redis_url", 6379, "a Redis URL string"),
        ("redis_prefix", "", "a non-empty string"),
    ],
)
def test_an_option_of_the_wrong_type_or_range_is_an_error_with_a_hint(settings, key, value, hint):
    # Given one OPTIONS value of the wrong type or out of range
    configure(settings, **{key: value})
    # When the system checks run (never a traceback)
    messages = jobs_messages()
    # Then E020 names the key and the value, and the hint says what it takes
    assert ids(messages) == ["django_jobs.E020"], messages
    assert f"['{key}'] is {value!r}" in messages[0].msg
    assert hint in messages[0].hint


def test_options_that_are_not_a_dict_are_an_error(settings):
    configure(settings)
    settings.TASKS = {"default": {**settings.TASKS["default"], "OPTIONS": ["broker"]}}
    assert ids(jobs_messages()) == ["django_jobs.E020"]


def test_a_task_module_that_cannot_be_imported_is_an_error(settings):
    # Given task_modules naming a module that does not exist
    configure(settings, task_modules=["tests.tasks", "mysite.nope"])
    # When the system checks run
    messages = jobs_messages()
    # Then E021 names it
    assert ids(messages) == ["django_jobs.E021"]
    assert "'mysite.nope'" in messages[0].msg


def test_manage_py_check_reports_bad_option_types_without_a_traceback(tmp_path):
    # Given the four mistakes of issue 14 in a real project's settings
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT, process_env

    options = {
        "task_modules": "mysite.jobs",
        "lease_seconds": "60",
        "default_max_attempts": 0,
        "poll_interval": -1,
    }
    env = {**process_env(), "JOBS_OPTIONS": json.dumps(options)}
    # When `manage.py check` runs
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then it fails with one E020 per option, and no traceback
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.count("django_jobs.E020") == 4
    assert "No module named 'm'" not in done.stderr
