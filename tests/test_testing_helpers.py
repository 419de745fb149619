"""``django_jobs.testing``: the helpers users put in their own suites, used from a Django
``TestCase`` (each test inside a transaction) and from pytest (the ``jobs`` fixture)."""

import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points

import pytest
from django.db import connection
from django.test import TestCase
from django.utils import timezone

from django_jobs import chain, group
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Schedule
from django_jobs.testing import (
    JobsTestMixin,
    StillRunnable,
    assert_enqueued,
    fire_schedules,
    run_jobs,
)
from django_jobs.testing.pytest_plugin import jobs  # noqa: F401  (the fixture, as -p loads it)
from tests import tasks
from tests.conftest import ROOT

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def flaky():
    """A task failing twice then succeeding, with max_attempts=3 and a minute of backoff."""
    return tasks.fails_until.using(retry_backoff=60, retry_jitter=False)


def minutely_schedule() -> Schedule:
    return Schedule.objects.create(
        name="every-minute", task="tests.tasks.add", args=[2, 3], cron="* * * * *"
    )


class HelpersInATestCase(JobsTestMixin, TestCase):
    """Each test runs inside TestCase's transaction: nothing is ever committed."""

    def test_assert_enqueued_passes_for_the_arguments_given(self):
        # Given a job enqueued with positional and keyword arguments
        tasks.echo.enqueue(1, (2, 3), word="x")
        # When it is asserted with the same ones (a tuple as the JSON list it became)
        job = self.assertEnqueued(tasks.echo, 1, (2, 3), word="x")
        # Then the assertion passes and hands back the job
        assert (job.args, job.kwargs, job.status) == ([1, [2, 3]], {"word": "x"}, JobStatus.READY)

    def test_assert_enqueued_fails_listing_what_was_enqueued(self):
        # Given add enqueued with other arguments, and another task
        tasks.add.enqueue(1, 2)
        tasks.mul.enqueue(3, 4)
        # When add(5, 6) is asserted
        with self.assertRaises(AssertionError) as caught:
            self.assertEnqueued(tasks.add, 5, 6)
        # Then the message says what was wanted and lists add's jobs
        message = str(caught.exception)
        assert "tests.tasks.add(5, 6) was not enqueued" in message
        assert "tests.tasks.add was enqueued 1 time(s)" in message
        assert "tests.tasks.add(1, 2)  queue=default status=READY" in message

    def test_assert_enqueued_of_a_task_never_enqueued_lists_the_others(self):
        tasks.mul.enqueue(3, 4)
        with self.assertRaises(AssertionError) as caught:
            self.assertEnqueued(tasks.add, 5, 6)
        assert "the jobs enqueued are:\n  tests.tasks.mul(3, 4)" in str(caught.exception)

    def test_a_failing_then_succeeding_task_is_run_to_success_without_waiting(self):
        # Given a task with max_attempts=3 that fails on attempts 1 and 2, a minute's backoff
        result = flaky().enqueue(succeed_on=3)
        # When the jobs are run in this thread
        run = self.run_jobs()
        # Then the retries ran at once (no backoff waited) and the job ended SUCCESSFUL
        assert [len(run.retried), len(run.succeeded)] == [2, 1]
        job = Job.objects.get(pk=result.id)
        assert (job.status, job.attempts, job.return_value) == (JobStatus.SUCCESSFUL, 3, 3)
        assert [e["exception_class_path"] for e in job.errors] == ["builtins.RuntimeError"] * 2

    def test_waiting_for_backoff_leaves_the_retry_queued(self):
        result = flaky().enqueue(succeed_on=3)
        run = self.run_jobs(wait_for_backoff=True)
        assert len(run) == 1
        job = Job.objects.get(pk=result.id)
        assert (job.status, job.attempts) == (JobStatus.READY, 1)
        assert job.run_after > timezone.now() + timedelta(seconds=50)

    def test_a_chain_runs_to_its_end(self):
        # Given a chain feeding each result to the next step, with a group in it
        workflow = chain(tasks.add.s(1, 2), tasks.add.s(10), group(tasks.mul.s(2), tasks.mul.s(3)))
        result = workflow.enqueue()
        # When the jobs are run
        run = self.run_jobs()
        # Then every step ran as it became READY: 1+2=3, 3+10=13, then 26 and 39
        assert len(run.succeeded) == 4
        assert result.return_value == [26, 39]

    def test_a_due_schedule_fires_and_its_job_runs(self):
        # Given a minutely schedule
        schedule = minutely_schedule()
        # When beat's tick fires it at its next fire time and the jobs run
        run = self.run_schedules(schedule.next_fire_at, sync=False)  # no JOBS_SCHEDULES
        # Then one job of its task ran with its arguments
        [job] = run.succeeded
        assert (job.task_path, job.args) == ("tests.tasks.add", [2, 3])
        assert Job.objects.get(pk=job.pk).return_value == 5
        self.assertEnqueued(tasks.add, 2, 3)

    def test_jobs_with_limits_run_through_their_gates(self):
        # Given three jobs of a task with a concurrency limit of one
        with tempfile.TemporaryDirectory() as directory:
            for _ in range(3):
                tasks.one_at_a_time.enqueue(directory, 0)
            # When the jobs are run, then each ran (one at a time: one per round)
            assert len(self.run_jobs().succeeded) == 3
            assert len(os.listdir(directory)) == 3

    def test_deferred_jobs_wait_unless_now_says_they_are_due(self):
        later = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 1)
        assert len(self.run_jobs()) == 0
        run = self.run_jobs(now=timezone.now() + timedelta(hours=2))
        assert [str(job.pk) for job in run.succeeded] == [later.id]


# --- pytest ------------------------------------------------------------------------------------
def test_fixture_assert_enqueued_passes_and_fails_with_a_listing(jobs):  # noqa: F811
    # Given add(1, 2) enqueued
    tasks.add.enqueue(1, 2)
    # Then asserting it passes, and asserting other arguments fails listing it
    jobs.assert_enqueued(tasks.add, 1, 2)
    with pytest.raises(AssertionError, match=r"tests\.tasks\.add\(1, 2\)  queue=default"):
        jobs.assert_enqueued(tasks.add, 2, 1)
    with pytest.raises(AssertionError, match="expected none"):
        jobs.assert_not_enqueued(tasks.add)
    jobs.assert_not_enqueued(tasks.mul)


def test_fixture_runs_a_flaky_task_to_success(jobs):  # noqa: F811
    result = flaky().enqueue(succeed_on=3)
    jobs.run()
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == ("SUCCESSFUL", 3, 3)


def test_fixture_runs_a_chain_to_its_end(jobs):  # noqa: F811
    result = chain(tasks.add.s(1, 2), tasks.add.s(10), tasks.mul.s(2)).enqueue()
    jobs.run()
    assert result.return_value == 26
    assert [j.status for j in jobs.enqueued()] == [JobStatus.SUCCESSFUL] * 3


def test_fixture_fires_a_schedule_at_a_given_time_and_runs_its_job(jobs):  # noqa: F811
    # Given a minutely schedule
    schedule = minutely_schedule()
    # When beat fires it at a time before its next fire time, nothing is enqueued
    assert jobs.fire_schedules(schedule.next_fire_at - timedelta(seconds=1), sync=False) == []
    # When it fires at a later time and jobs run
    run = jobs.run_schedules(schedule.next_fire_at + timedelta(seconds=1), sync=False)
    # Then its job ran
    assert [(j.task_path, j.return_value) for j in jobs.enqueued(status="SUCCESSFUL")] == [
        ("tests.tasks.add", 5)
    ]
    assert len(run.succeeded) == 1


@pytest.mark.django_db(transaction=True)
def test_helpers_work_on_committed_rows_too():
    # Given a job committed (no surrounding transaction), a schedule, a failing job
    tasks.add.enqueue(2, 2)
    failing = tasks.always_fails.enqueue("no")
    fired = fire_schedules(T0, sync=False)
    # When they run
    run = run_jobs()
    # Then the failing one used its three attempts, the other succeeded
    assert fired == []
    assert assert_enqueued(tasks.add, 2, 2).pk in [j.pk for j in run.succeeded]
    assert Job.objects.get(pk=failing.id).status == JobStatus.FAILED
    assert len(run.failed) == 1 and len(run.retried) == 2


def test_a_task_snoozing_forever_stops_at_max_rounds_with_a_message(db):
    # Given a task that snoozes each time it runs
    result = tasks.snoozes_forever.enqueue()
    # When run_jobs runs it without waiting for its snoozes
    with pytest.raises(StillRunnable, match="still due after 3 rounds"):
        run_jobs(max_rounds=3)
    # Then it stopped after three attempts; waiting for the snooze runs it once
    assert Job.objects.get(pk=result.id).status == JobStatus.READY
    assert len(run_jobs(wait_for_backoff=True)) == 0


def test_schedules_declared_in_settings_are_synced_and_fired_like_beat_does(jobs, settings):  # noqa: F811
    # Given a schedule declared in JOBS_SCHEDULES
    settings.JOBS_SCHEDULES = {"sum": {"task": "tests.tasks.add", "interval": 60, "args": [4, 4]}}
    # When schedules are run two minutes from now (synced first, as beat does at start)
    run = jobs.run_schedules(timezone.now() + timedelta(minutes=2))
    # Then the declared schedule fired (once: its missed-run policy) and its job ran
    assert [(j.task_path, j.args) for j in run.succeeded] == [("tests.tasks.add", [4, 4])]


INNER_TEST = """
from tests import tasks


def test_with_the_fixture(jobs):
    tasks.add.enqueue(1, 2)
    jobs.assert_enqueued(tasks.add, 1, 2)
    assert [job.return_value for job in jobs.run().succeeded] == [3]
"""


def plugin_installed() -> bool:
    """Whether the installed django-jobs declares the pytest plugin (``pip install -e .``)."""
    plugins = entry_points(group="pytest11")
    return any(ep.value == "django_jobs.testing.pytest_plugin" for ep in plugins)


def test_the_plugin_loaded_by_name_gives_a_suite_the_jobs_fixture(tmp_path):
    # Given a test module using the `jobs` fixture without importing it
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": ""}
    if connection.vendor == "sqlite":
        # Its own test database: not this run's, nor another run's beside it (the test project
        # names a SQLite test database var/test-<the database file's name>).
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / f'plugin-{os.getpid()}.sqlite3'}"
    else:
        env["TEST_DATABASE_NAME"] = f"{connection.settings_dict['NAME']}_plugin"
    # When pytest runs it: with the plugin loaded through its pytest11 entry point, as in a
    # project that pip-installed django-jobs (or named on the command line where this checkout
    # is not installed: naming an installed plugin again is an error)
    args = [] if plugin_installed() else ["-p", "django_jobs.testing.pytest_plugin"]
    args += ["-p", "no:cacheprovider", "--create-db"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-q", "-c", str(ROOT / "pyproject.toml")]
        + ["--rootdir", str(ROOT), str(tmp_path / "test_inner.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Then the fixture was there and its test passed
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
