"""What workers and beats print: with no LOGGING at all, as JSON, one line per event.

The process tests run real ``runworker``/``runbeat`` processes on a settings module without
LOGGING (``tests/settings_no_logging.py``), as in a project fresh from ``startproject``.
"""

import json
import logging
import re
import signal
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest

from django_jobs import logs
from django_jobs.beat.loop import Beat
from django_jobs.models import Job, Schedule
from django_jobs.tasks_api import task_backends
from tests import conftest, tasks
from tests.conftest import ManageProcess, wait_for

BANNER_FIELDS = (
    "version", "backend", "broker", "database", "vendor", "queues", "processes", "threads",
    "tasks",
)  # fmt: skip
JOB_FIELDS = ("job_id", "task", "queue", "attempt")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def manage_unconfigured(transactional_db, tmp_path):
    """Start ``manage.py <args>`` on the test database with no LOGGING in its settings."""
    commands: list[ManageProcess] = []

    def start(*args: str, schedules: dict | None = None) -> ManageProcess:
        env = conftest.process_env(
            DJANGO_SETTINGS_MODULE="tests.settings_no_logging",
            JOBS_SCHEDULES=json.dumps(schedules or {}),
        )
        env.pop("JOBS_LOG_LEVEL")
        command = ManageProcess(args, env, tmp_path / f"{args[0]}-{len(commands)}.log")
        commands.append(command)
        return command

    yield start
    for command in commands:
        command.stop()


@pytest.fixture
def django_jobs_logger():
    """The ``django_jobs`` logger, put back as it was after the test."""
    logger = logging.getLogger(logs.LOGGER)
    saved = logger.handlers[:], logger.level, logger.propagate
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved


def without_root_handlers(monkeypatch) -> None:
    """The root logger as Django's default logging leaves it: no handlers (pytest's are
    added for the test's call, after the fixtures)."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


def line_with(output: str, text: str) -> str:
    found = [line for line in output.splitlines() if text in line]
    assert found, f"no line with {text!r} in:\n{output}"
    return found[0]


def stopped_after_failing(worker: ManageProcess, result) -> str:
    """Wait until ``result``'s job has FAILED and its line is written; stop; the output."""
    wait_for(
        lambda: (
            Job.objects.filter(pk=result.id, status="FAILED").exists()
            and "job failed" in worker.output()
        ),
        timeout=60,
        message=f"the job to fail\n{worker.output()}",
    )
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()
    return worker.output()


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# --- real processes, no LOGGING ---------------------------------------------------------------
@pytest.mark.processes
def test_a_worker_without_logging_prints_its_banner_and_each_failure(manage_unconfigured):
    # Given a project without LOGGING and a job that fails its three attempts
    result = tasks.always_fails.enqueue()
    # When a worker runs it
    worker = manage_unconfigured("runworker", "--concurrency", "2")
    output = stopped_after_failing(worker, result)
    # Then the start-up banner is there, with every field
    banner = logs.pairs(line_with(output, "worker starting"))
    assert set(BANNER_FIELDS) <= set(banner), banner
    served = task_backends["default"].jobs_options  # the CI row chooses the broker
    assert (banner["backend"], banner["broker"], banner["database"]) == (
        "default",
        served.broker,
        "default",
    )
    assert (banner["processes"], banner["threads"]) == (1, 2)
    assert banner["queues"] == "default,emails,reports"
    assert banner["tasks"] > 10
    # And one line per failed attempt, each naming the job, its task, queue and attempt
    failures = [line for line in output.splitlines() if "job retry" in line or "job failed" in line]
    assert len(failures) == 3, output
    for attempt, line in enumerate(failures, start=1):
        fields = logs.pairs(line)
        assert fields["job_id"] == result.id
        assert fields["task"] == "tests.tasks.always_fails"
        assert fields["queue"] == "default"
        assert fields["attempt"] == attempt
    assert " ERROR django_jobs.worker.outcomes job failed " in failures[-1]


@pytest.mark.processes
def test_a_worker_with_log_format_json_writes_one_json_object_per_line(manage_unconfigured):
    # Given a failing job
    result = tasks.always_fails.enqueue()
    # When a worker runs it with --log-format json
    worker = manage_unconfigured("runworker", "--log-format", "json")
    output = stopped_after_failing(worker, result)
    # Then its lines parse as JSON, the key=value fields as keys
    entries = json_lines(output)
    [banner] = [e for e in entries if e["message"].startswith("worker starting")]
    assert set(BANNER_FIELDS) <= set(banner)
    assert banner["level"] == "INFO" and banner["logger"] == "django_jobs.runworker"
    failed = [e for e in entries if e["message"].startswith("job failed")]
    assert len(failed) == 1, entries
    assert {k: failed[0][k] for k in JOB_FIELDS} == {
        "job_id": result.id,
        "task": "tests.tasks.always_fails",
        "queue": "default",
        "attempt": 3,
    }
    assert failed[0]["error"] == "builtins.ValueError"
    # And no django_jobs line was written as plain text besides
    assert "worker starting" not in "".join(
        line for line in output.splitlines() if not line.startswith("{")
    )


@pytest.mark.processes
@pytest.mark.parametrize("log_format", [[], ["--log-format", "json"]], ids=["text", "json"])
def test_a_beat_without_logging_prints_its_banner_and_each_fire(manage_unconfigured, log_format):
    # Given a project without LOGGING and an every-second schedule
    Schedule.objects.create(name="tick", task="tests.tasks.add", interval_seconds=1, args=[1, 1])
    # When runbeat runs until it fired
    beat = manage_unconfigured("runbeat", "--check-interval", "0.5", *log_format)
    wait_for(lambda: "schedule fired" in beat.output(), timeout=60, message="a fire line")
    beat.signal(signal.SIGTERM)
    assert beat.wait(30) == 0, beat.output()
    output = beat.output()
    # Then the banner and a fire line naming the job it enqueued are there
    if log_format:
        entries = json_lines(output)
        banner = next(e for e in entries if e["message"].startswith("beat starting"))
        fired = next(e for e in entries if e["message"].startswith("schedule fired"))
    else:
        banner = logs.pairs(line_with(output, "beat starting"))
        fired = logs.pairs(line_with(output, "schedule fired"))
    assert {"version", "backend", "broker", "database", "tasks"} <= set(banner)
    assert fired["schedule"] == "tick" and fired["task"] == "tests.tasks.add"
    assert fired["queue"] == "default"
    assert Job.objects.filter(pk=fired["job_id"]).exists()


# --- configure(): when it attaches a handler ----------------------------------------------------
def test_configure_attaches_a_handler_only_where_logging_is_not_configured(
    django_jobs_logger, monkeypatch
):
    # Given the django_jobs logger with no handler of its own, nor the root logger's
    without_root_handlers(monkeypatch)
    django_jobs_logger.handlers[:] = []
    django_jobs_logger.setLevel(logging.NOTSET)
    stream = StringIO()
    # When the commands configure logging
    assert logs.configure(stream=stream)
    logging.getLogger("django_jobs.worker.process").info("worker started worker=w1")
    # Then INFO lines reach stderr as text
    assert "INFO django_jobs.worker.process worker started worker=w1" in stream.getvalue()
    # And where the project configured a handler, configure leaves it alone
    assert not logs.configure(stream=StringIO())
    assert len(django_jobs_logger.handlers) == 1
    django_jobs_logger.handlers[:] = []
    logging.getLogger().addHandler(logging.NullHandler())
    assert not logs.configure(stream=StringIO())
    assert django_jobs_logger.handlers == []


def test_an_explicit_log_format_replaces_the_projects_handlers(django_jobs_logger, monkeypatch):
    # Given a project whose LOGGING configures the root logger
    without_root_handlers(monkeypatch)
    logging.getLogger().addHandler(logging.NullHandler())
    stream = StringIO()
    # When the worker is asked for --log-format json
    assert logs.configure("json", stream=stream)
    logging.getLogger("django_jobs.beat.loop").warning("beat tick failed error=x")
    # Then its lines are JSON on stderr, and no longer go to the project's handlers too
    assert json.loads(stream.getvalue())["error"] == "x"
    assert django_jobs_logger.propagate is False


def test_the_json_format_has_the_pairs_as_keys():
    # Given a job line whose error is a repr with spaces
    record = logging.LogRecord(
        "django_jobs.x", logging.ERROR, __file__, 1,
        "job failed job_id=%s task=t queue=q attempt=2 error=%r", ("abc", ValueError("a b")),
        None,
    )  # fmt: skip
    # When it is formatted as JSON
    entry = json.loads(logs.JsonFormatter().format(record))
    # Then each pair is a key, whole numbers as numbers
    assert entry["job_id"] == "abc" and entry["attempt"] == 2
    assert entry["error"] == "ValueError('a b')"
    assert entry["level"] == "ERROR" and entry["message"].startswith("job failed")


# --- beat: one line per fire ------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_fire_that_cannot_enqueue_is_logged_once_as_an_error_not_as_fired(caplog):
    # Given a schedule of an undeclared task, due now
    t0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    schedule = Schedule.objects.create(name="bad", task="tests.tasks.add", interval_seconds=10)
    due = t0 + timedelta(seconds=10)
    Schedule.objects.filter(pk=schedule.pk).update(task="os.system", next_fire_at=due)
    # When beat ticks
    with caplog.at_level(logging.INFO, logger="django_jobs"):
        Beat().tick(t0 + timedelta(seconds=10))
    # Then one error line says it could not enqueue, and no line claims it fired
    messages = [r.getMessage() for r in caplog.records if r.name == "django_jobs.beat.loop"]
    assert [m for m in messages if "could not enqueue" in m] == [
        line_with("\n".join(messages), "could not enqueue")
    ]
    assert not [m for m in messages if "schedule fired" in m]
    assert re.search(r"schedule=bad fire_time=\S+ task=os.system error=", messages[0])
