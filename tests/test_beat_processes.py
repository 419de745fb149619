"""Real ``runbeat`` and ``runworker --beat`` processes on the test database."""

import json
import signal
from datetime import UTC, datetime, timedelta

import pytest

from django_jobs.models import Job, Schedule, ScheduleFire
from tests import conftest
from tests.conftest import ManageProcess, wait_for

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def manage(tmp_path):
    """Start ``manage.py <args>`` on the test database, with no code-declared schedules."""
    commands: list[ManageProcess] = []

    def start(*args: str, schedules: dict | None = None) -> ManageProcess:
        env = conftest.process_env(JOBS_SCHEDULES=json.dumps(schedules or {}))
        command = ManageProcess(args, env, tmp_path / f"{args[0]}-{len(commands)}.log")
        commands.append(command)
        return command

    yield start
    for command in commands:
        command.stop()


def fire_times(name: str) -> list[datetime]:
    fires = ScheduleFire.objects.filter(schedule__name=name).order_by("fire_time")
    return list(fires.values_list("fire_time", flat=True))


def test_two_beats_fire_every_second_once_and_miss_none(manage):
    # Given an every-second schedule and two beats racing for it
    Schedule.objects.create(name="tick", task="tests.tasks.add", cron="* * * * * *", args=[1, 1])
    beats = [manage("runbeat", "--check-interval", "0.5") for _ in range(2)]
    # When they run for a few seconds (each fire logged by whichever beat won it)
    wait_for(lambda: len(fire_times("tick")) >= 6, timeout=60, message="six fires")
    wait_for(lambda: all("schedule fired" in b.output() for b in beats), timeout=30)
    for beat in beats:
        beat.proc.send_signal(signal.SIGTERM)
    for beat in beats:
        assert beat.proc.wait(30) == 0, beat.output()
    # Then every second between the first and last fire time fired, each exactly once
    times = fire_times("tick")
    assert times == [times[0] + timedelta(seconds=i) for i in range(len(times))]
    job_ids = {str(i) for i in ScheduleFire.objects.values_list("job_id", flat=True)}
    assert job_ids == {str(pk) for pk in Job.objects.values_list("pk", flat=True)}
    assert len(job_ids) == len(times)


def test_downtime_then_each_missed_run_policy(manage):
    # Given every-second schedules whose beat was down for the last 30 seconds
    down_since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    for policy in ("skip", "latest", "all"):
        schedule = Schedule.objects.create(
            name=policy,
            task="tests.tasks.add",
            args=[1, 2],
            interval_seconds=1,
            missed_runs=policy,
            misfire_grace_seconds=3,
            catchup_window_seconds=10,
        )
        Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=down_since)
    # When a beat starts
    started = datetime.now(UTC)
    beat = manage("runbeat")
    wait_for(lambda: Schedule.objects.filter(next_fire_at__gt=started).count() == 3, timeout=60)
    beat.proc.send_signal(signal.SIGTERM)
    assert beat.proc.wait(30) == 0, beat.output()
    # Then "skip" fired none of the seconds missed before the beat started, "latest" at most
    # one, and "all" caught up those within its 10 s window: at least 5 seconds before its
    # first fire (whenever the slow-starting process got there), none older than the window
    grace = timedelta(seconds=3)
    missed = {p: [t for t in fire_times(p) if t < started - grace] for p in ("skip", "latest")}
    assert missed["skip"] == []
    assert len(missed["latest"]) <= 1
    assert len(fire_times("latest")) >= 1
    all_fires = ScheduleFire.objects.filter(schedule__name="all")
    first_fire = min(all_fires.values_list("fired_at", flat=True))
    assert len([t for t in fire_times("all") if t < first_fire - grace]) >= 5
    assert min(fire_times("all")) >= started - timedelta(seconds=11)


def test_runworker_beat_fires_schedules_and_the_worker_runs_them(manage, tmp_path):
    # Given a code-declared schedule that records each run in a file
    out = tmp_path / "runs.txt"
    declared = {
        "recorder": {"task": "tests.tasks.record", "interval": 1, "args": [str(out), "run"]}
    }
    # When one runworker --beat runs
    worker = manage("runworker", "--beat", "--concurrency", "2", schedules=declared)
    # Then the schedule is synced, fires, and its jobs run
    wait_for(
        lambda: out.exists() and len(out.read_text().split()) >= 3,
        timeout=60,
        message=f"three scheduled runs; log:\n{worker.output()}",
    )
    assert Schedule.objects.get(name="recorder").declared_in_code
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(40) == 0, worker.output()
    assert "beat started" in worker.output()
    assert "beat stopped" in worker.output()


def test_runbeat_refuses_a_bad_declared_cron(manage):
    declared = {"bad": {"task": "tests.tasks.add", "cron": "61 * * * *"}}
    beat = manage("runbeat", schedules=declared)
    assert beat.proc.wait(60) != 0
    assert "JOBS_SCHEDULES['bad']" in beat.output()
    assert "is not a valid cron expression" in beat.output()


STRING_INTERVAL = {"task": "tests.tasks.add", "interval": "60", "args": [1, 2]}


@pytest.mark.parametrize("command", [["runbeat"], ["runworker", "--beat"]])
def test_a_bad_declared_interval_stops_beat_with_a_clear_error_not_a_crash_loop(manage, command):
    # Given JOBS_SCHEDULES with "interval": "60" (a string), which used to pass `check` and
    # then crash beat with a TypeError (and runworker --beat restarted it every ~2 s)
    beat = manage(*command, schedules={"every minute": STRING_INTERVAL})
    # When it starts
    # Then it exits non-zero at once, naming the entry, without a traceback
    assert beat.proc.wait(60) != 0
    output = beat.output()
    assert "django_jobs.E010" in output
    assert "JOBS_SCHEDULES['every minute']: interval_seconds:" in output
    assert "Traceback" not in output


def test_beat_without_checks_skips_a_bad_entry_and_fires_the_others(manage):
    # Given a bad entry next to a good every-second one, and checks skipped
    declared = {
        "bad": STRING_INTERVAL,
        "good": {"task": "tests.tasks.add", "interval": 1, "args": [1, 2]},
    }
    beat = manage("runbeat", "--skip-checks", "--check-interval", "0.5", schedules=declared)
    # When it runs
    wait_for(lambda: len(fire_times("good")) >= 2, timeout=60, message="two fires of good")
    # Then the bad entry was skipped with one error line, and beat keeps running
    assert beat.proc.poll() is None
    output = beat.output()
    assert "schedule in JOBS_SCHEDULES is invalid, skipped name=bad" in output
    assert "Traceback" not in output
    assert not Schedule.objects.filter(name="bad").exists()
    beat.proc.send_signal(signal.SIGTERM)
    assert beat.proc.wait(30) == 0, output
