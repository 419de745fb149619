"""Beat driven as single ticks with an injected clock, on the real database."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from django_jobs.beat.loop import Beat
from django_jobs.models import Job, Schedule, ScheduleFire

pytestmark = pytest.mark.django_db(transaction=True)

ADD = "tests.tasks.add"
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def schedule_at(now: datetime, **fields) -> Schedule:
    """A schedule as if created at ``now`` (the beat's clock, not the wall clock)."""
    fields.setdefault("task", ADD)
    fields.setdefault("args", [1, 2])
    schedule = Schedule.objects.create(name=fields.pop("name", "s"), **fields)
    first = schedule.timing().next_after(now)
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=first)
    schedule.refresh_from_db()
    return schedule


def fire_times(schedule: Schedule) -> list[datetime]:
    return list(schedule.fires.order_by("fire_time").values_list("fire_time", flat=True))


def jobs() -> int:
    return Job.objects.filter(task_path=ADD).count()


def test_a_due_schedule_enqueues_one_job_and_moves_on():
    # Given a minutely schedule created at T0
    schedule = schedule_at(T0, cron="* * * * *", queue_name="emails", priority=7)
    beat = Beat()
    # When beat ticks before, at and after its first fire time
    assert beat.tick(T0 + timedelta(seconds=30)) == T0 + timedelta(minutes=1)
    assert jobs() == 0
    assert beat.tick(T0 + timedelta(minutes=1)) == T0 + timedelta(minutes=2)
    # Then one job was enqueued through the backend with the schedule's arguments and queue
    job = Job.objects.get(task_path=ADD)
    assert (job.args, job.queue_name, job.priority) == ([1, 2], "emails", 7)
    schedule.refresh_from_db()
    assert schedule.last_fired_at == T0 + timedelta(minutes=1)
    assert str(schedule.last_job_id) == str(job.pk)
    assert fire_times(schedule) == [T0 + timedelta(minutes=1)]


def test_two_beats_ticking_the_same_instant_fire_once():
    schedule_at(T0, interval_seconds=10)
    first, second = Beat(), Beat()
    for step in range(1, 7):
        now = T0 + timedelta(seconds=10 * step)
        first.tick(now)
        second.tick(now)
    assert jobs() == 6
    assert ScheduleFire.objects.count() == 6


def test_a_stale_write_rewinding_next_fire_at_cannot_fire_a_time_again():
    # Given a schedule that fired at T0+10s
    schedule = schedule_at(T0, interval_seconds=10)
    beat = Beat()
    beat.tick(T0 + timedelta(seconds=10))
    # When something writes the old next_fire_at back (a stale form, a restored row)
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=T0 + timedelta(seconds=10))
    beat.tick(T0 + timedelta(seconds=11))
    # Then the fire record stops a second job for that fire time
    assert jobs() == 1
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(seconds=20)


def test_an_operator_save_never_writes_back_beat_state():
    # Given an operator who loaded the row before beat fired it
    schedule = schedule_at(T0, interval_seconds=10)
    stale = Schedule.objects.get(pk=schedule.pk)
    Beat().tick(T0 + timedelta(seconds=10))
    # When they save a change that does not touch the timing
    stale.kwargs = {"b": 1}
    stale.args = [1]
    stale.save()
    # Then beat's state is intact
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(seconds=20)
    assert schedule.last_fired_at == T0 + timedelta(seconds=10)
    assert schedule.kwargs == {"b": 1}


def test_changing_the_timing_recomputes_the_next_fire_time_from_now():
    schedule = Schedule.objects.create(name="s", task=ADD, cron="0 3 * * *")
    schedule.cron = "*/5 * * * * *"
    schedule.save()
    assert schedule.next_fire_at - datetime.now(UTC) <= timedelta(seconds=5)
    schedule.enabled = False
    schedule.save()
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at is None


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", []),
        ("latest", [utc(2024, 1, 1, 13, 0)]),
        ("all", [utc(2024, 1, 1, 12, 51) + timedelta(minutes=i) for i in range(10)]),
    ],
)
def test_downtime_follows_the_missed_run_policy(policy, expected):
    # Given a minutely schedule whose beat was down from 12:00 to 13:00:30
    schedule = schedule_at(
        T0,
        cron="* * * * *",
        missed_runs=policy,
        misfire_grace_seconds=20,
        catchup_window_seconds=600,
    )
    # When beat comes back
    beat = Beat()
    beat.tick(utc(2024, 1, 1, 13, 0, 30))
    # Then the missed fire times are handled by the policy, and the schedule goes on
    assert fire_times(schedule) == expected
    assert jobs() == len(expected)
    beat.tick(utc(2024, 1, 1, 13, 1))
    assert fire_times(schedule)[-1:] == [utc(2024, 1, 1, 13, 1)]


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        ("Europe/Berlin", (2024, 3, 31)),
        ("Europe/Berlin", (2024, 10, 27)),
        ("America/New_York", (2024, 3, 10)),
        ("America/New_York", (2024, 11, 3)),
    ],
)
def test_a_0230_job_fires_once_on_daylight_saving_days(tz, day):
    # Given a daily 02:30 schedule, and beat ticking every 20 minutes over three days
    start = datetime(*day, tzinfo=UTC) - timedelta(days=1)
    schedule = schedule_at(start, cron="30 2 * * *", timezone=tz, missed_runs="latest")
    beat = Beat()
    for step in range(3 * 24 * 3):
        beat.tick(start + timedelta(minutes=20 * step))
    # Then it fired once per local day, the transition day included
    local_days = [t.astimezone(ZoneInfo(tz)).date() for t in fire_times(schedule)]
    assert len(local_days) == 3
    assert len(set(local_days)) == 3


def test_a_one_off_fires_once_then_stops():
    schedule = schedule_at(T0, run_at=T0 + timedelta(minutes=1))
    beat = Beat()
    for minutes in (1, 2, 3):
        beat.tick(T0 + timedelta(minutes=minutes))
    assert jobs() == 1
    schedule.refresh_from_db()
    assert schedule.next_fire_at is None


def test_disabled_schedules_do_not_fire_and_tick_returns_none_when_nothing_is_due():
    schedule = schedule_at(T0, interval_seconds=10)
    Schedule.objects.filter(pk=schedule.pk).update(enabled=False)
    assert Beat().tick(T0 + timedelta(minutes=5)) is None
    assert jobs() == 0


def test_a_schedule_of_an_undeclared_task_records_the_error_and_beat_goes_on():
    schedule = schedule_at(T0, interval_seconds=10)
    Schedule.objects.filter(pk=schedule.pk).update(task="os.system", args=["true"])
    beat = Beat()
    beat.tick(T0 + timedelta(seconds=10))
    schedule.refresh_from_db()
    assert "is not a declared task" in schedule.last_error
    assert schedule.next_fire_at == T0 + timedelta(seconds=20)
    assert Job.objects.count() == 0


def test_model_clean_rejects_bad_schedules_with_clear_messages():
    with pytest.raises(ValidationError) as e:
        Schedule(name="x", task=ADD, cron="61 * * * *").full_clean()
    assert "'61 * * * *' is not a valid cron expression" in str(e.value.message_dict["cron"])
    with pytest.raises(ValidationError, match="exactly one of"):
        Schedule(name="x", task=ADD, cron="* * * * *", interval_seconds=5).full_clean()
    with pytest.raises(ValidationError) as e:
        Schedule(name="x", task=ADD, cron="@daily", timezone="Mars/Olympus").full_clean()
    assert "not an IANA time zone" in str(e.value.message_dict["timezone"])
    with pytest.raises(ValidationError) as e:
        Schedule(name="x", task="os.system", interval_seconds=5).full_clean()
    assert "is not a declared task" in str(e.value.message_dict["task"])


def test_runworker_refuses_beat_with_burst():
    with pytest.raises(CommandError, match="--beat cannot be combined with --burst"):
        call_command("runworker", "--beat", "--burst")
