"""Fire-time arithmetic: cron, intervals, one-offs, daylight saving, missed-run policies."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from django_jobs.beat.fire_times import MAX_CATCHUP, Timing, check_cron, due_fire_times
from django_jobs.exceptions import InvalidSchedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(times, tz) -> list[str]:
    return [t.astimezone(tz).strftime("%m-%d %H:%M %Z") for t in times]


# --- cron expressions ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "is not a valid cron expression"),
        ("* * *", "has 3 field(s); a cron expression has 5"),
        ("* * * * * * *", "has 7 field(s)"),
        ("@fortnightly", "is not a cron nickname"),
        ("0 0 31 2 *", "never matches a date"),
        ("every day", "has 2 field(s)"),
    ],
)
def test_bad_cron_expressions_are_rejected_with_a_clear_message(expression, message):
    with pytest.raises(InvalidSchedule, match=re.escape(message)):
        check_cron(expression)


def test_cron_accepts_five_fields_six_with_seconds_first_and_nicknames():
    assert check_cron("  0  3 * * 1-5 ") == "0 3 * * 1-5"
    assert check_cron("@Hourly") == "@hourly"
    every_5s = Timing(cron="*/5 * * * * *")
    assert every_5s.upcoming(utc(2024, 1, 1, 0, 0, 3), 2) == [
        utc(2024, 1, 1, 0, 0, 5),
        utc(2024, 1, 1, 0, 0, 10),
    ]
    assert Timing(cron="@daily").next_after(utc(2024, 1, 1, 5)) == utc(2024, 1, 2)


def test_cron_is_read_on_the_schedules_own_wall_clock():
    nine_in_new_york = Timing(cron="0 9 * * *", tz=NEW_YORK)
    assert nine_in_new_york.next_after(utc(2024, 1, 10)) == utc(2024, 1, 10, 14)
    assert nine_in_new_york.next_after(utc(2024, 7, 10)) == utc(2024, 7, 10, 13)


# --- daylight saving ----------------------------------------------------------------------
def test_spring_forward_a_skipped_time_fires_once_at_the_end_of_the_gap():
    # Given 02:30 daily in Berlin, where 2024-03-31 jumps from 02:00 to 03:00
    daily = Timing(cron="30 2 * * *", tz=BERLIN)
    # Then the skipped day fires once, at 03:00 CEST, and the days around it at 02:30
    assert local(daily.upcoming(utc(2024, 3, 29, 12), 3), BERLIN) == [
        "03-30 02:30 CET",
        "03-31 03:00 CEST",
        "04-01 02:30 CEST",
    ]


def test_spring_forward_collapses_every_time_in_the_gap_into_one_fire():
    quarterly = Timing(cron="*/15 * * * *", tz=BERLIN)
    assert local(quarterly.upcoming(utc(2024, 3, 31, 0, 30), 4), BERLIN) == [
        "03-31 01:45 CET",
        "03-31 03:00 CEST",
        "03-31 03:15 CEST",
        "03-31 03:30 CEST",
    ]


def test_fall_back_a_repeated_time_fires_once_at_its_first_occurrence():
    # Given 02:30 daily in Berlin, where 2024-10-27 goes through 02:00-03:00 twice
    daily = Timing(cron="30 2 * * *", tz=BERLIN)
    times = daily.upcoming(utc(2024, 10, 26, 12), 2)
    assert local(times, BERLIN) == ["10-27 02:30 CEST", "10-28 02:30 CET"]
    # And from inside the second pass of the hour it does not fire again that day
    assert daily.next_after(utc(2024, 10, 27, 1, 10)) == utc(2024, 10, 28, 1, 30)
    assert daily.last_at_or_before(utc(2024, 10, 27, 1, 10)) == utc(2024, 10, 27, 0, 30)


def test_new_york_transitions():
    daily = Timing(cron="30 2 * * *", tz=NEW_YORK)
    spring = daily.upcoming(utc(2024, 3, 9, 12), 2)  # 2024-03-10 02:00 -> 03:00
    assert local(spring, NEW_YORK) == ["03-10 03:00 EDT", "03-11 02:30 EDT"]
    autumn = daily.upcoming(utc(2024, 11, 2, 12), 2)  # 2024-11-03 02:00 -> 01:00
    assert local(autumn, NEW_YORK) == ["11-03 02:30 EST", "11-04 02:30 EST"]
    hourly = Timing(cron="30 1 * * *", tz=NEW_YORK)  # 01:30 happens twice on 11-03
    assert local(hourly.upcoming(utc(2024, 11, 3, 4), 2), NEW_YORK) == [
        "11-03 01:30 EDT",
        "11-04 01:30 EST",
    ]


def test_intervals_are_elapsed_time_and_ignore_daylight_saving():
    hourly = Timing(interval=timedelta(hours=1), tz=BERLIN)
    times = hourly.upcoming(utc(2024, 3, 31, 0, 30), 3)
    assert times == [utc(2024, 3, 31, 1), utc(2024, 3, 31, 2), utc(2024, 3, 31, 3)]


# --- intervals, one-offs, start and end ---------------------------------------------------
def test_intervals_align_on_start_at_or_the_epoch():
    every_10s = Timing(interval=timedelta(seconds=10))
    assert every_10s.next_after(utc(2024, 1, 1, 0, 0, 3)) == utc(2024, 1, 1, 0, 0, 10)
    assert every_10s.next_after(utc(2024, 1, 1, 0, 0, 10)) == utc(2024, 1, 1, 0, 0, 20)
    anchored = Timing(interval=timedelta(seconds=10), start_at=utc(2024, 1, 1, 0, 0, 7))
    assert anchored.upcoming(utc(2023, 1, 1), 2) == [
        utc(2024, 1, 1, 0, 0, 7),
        utc(2024, 1, 1, 0, 0, 17),
    ]


def test_one_off_fires_once_and_end_at_stops_a_schedule():
    once = Timing(run_at=utc(2024, 5, 1, 12))
    assert once.upcoming(utc(2024, 1, 1), 5) == [utc(2024, 5, 1, 12)]
    assert once.next_after(utc(2024, 5, 1, 12)) is None
    ending = Timing(cron="0 * * * *", end_at=utc(2024, 1, 1, 2))
    assert ending.upcoming(utc(2024, 1, 1), 5) == [utc(2024, 1, 1, 1), utc(2024, 1, 1, 2)]


# --- missed-run policies ------------------------------------------------------------------
MINUTELY = Timing(cron="* * * * *")
GRACE = timedelta(seconds=30)
WINDOW = timedelta(minutes=10)


def due(policy, due_since, now):
    return due_fire_times(MINUTELY, due_since, now, policy, GRACE, WINDOW)


def test_on_time_fire_times_fire_under_every_policy():
    for policy in ("skip", "latest", "all"):
        assert due(policy, utc(2024, 1, 1, 12), utc(2024, 1, 1, 12, 0, 2)) == [utc(2024, 1, 1, 12)]


def test_after_downtime_skip_fires_only_what_is_on_time():
    assert due("skip", utc(2024, 1, 1, 10), utc(2024, 1, 1, 12, 0, 40)) == []
    assert due("skip", utc(2024, 1, 1, 10), utc(2024, 1, 1, 12, 0, 5)) == [utc(2024, 1, 1, 12)]


def test_after_downtime_latest_fires_once_for_the_missed_window():
    assert due("latest", utc(2024, 1, 1, 10), utc(2024, 1, 1, 12, 0, 40)) == [utc(2024, 1, 1, 12)]
    assert due("latest", utc(2024, 1, 1, 10), utc(2024, 1, 1, 12, 0, 5)) == [utc(2024, 1, 1, 12)]


def test_after_downtime_all_fires_each_missed_time_within_the_window():
    times = due("all", utc(2024, 1, 1, 10), utc(2024, 1, 1, 12, 0, 40))
    assert times == [utc(2024, 1, 1, 11, 51) + timedelta(minutes=i) for i in range(10)]


def test_all_is_capped_however_long_the_window():
    every_second = Timing(interval=timedelta(seconds=1))
    times = due_fire_times(
        every_second, utc(2024, 1, 1), utc(2024, 1, 2), "all", GRACE, timedelta(days=1)
    )
    assert len(times) == MAX_CATCHUP
    assert times[-1] == utc(2024, 1, 2)
