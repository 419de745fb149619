"""How the console writes times, durations and task paths, and what its pages are called."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_jobs.admin import display
from django_jobs.admin.schedules import both_zones, interval
from django_jobs.models import Schedule

NOW = datetime(2025, 12, 7, 15, 24, 3, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0004, "0 ms"),
        (0.087, "87 ms"),
        (2, "2.000 s"),
        (12.3456, "12.346 s"),
        (243.21, "4 min 3.210 s"),
        (7503.9, "2 h 5 min 3 s"),
    ],
)
def test_durations_are_given_to_the_millisecond(seconds, text):
    assert display.duration(timedelta(seconds=seconds)) == text
    assert display.duration(None) == "–"


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(seconds=-12.7), "12 s ago"),
        (timedelta(seconds=-59.9), "59 s ago"),
        (timedelta(minutes=-4, seconds=-59), "4 min ago"),
        (timedelta(hours=-3, minutes=-1), "3 h ago"),
        (timedelta(days=-2, hours=-5), "2 d ago"),
        (timedelta(0), "0 s ago"),
        (timedelta(seconds=8.2), "in 8 s"),
        (timedelta(hours=17, minutes=3), "in 17 h"),
    ],
)
def test_times_are_relative_to_now(offset, text):
    assert display.ago(NOW + offset, now=NOW) == text


def test_a_relative_time_has_its_exact_second_and_zone_on_hover():
    html = display.timestamp(NOW - timedelta(seconds=12), now=NOW)
    assert html == (
        '<time datetime="2025-12-07T15:23:51.250000+00:00" title="2025-12-07 15:23:51 UTC">'
        "12 s ago</time>"
    )
    assert display.timestamp(None) == "–"
    with timezone.override("Asia/Kolkata"):  # the current time zone, as the admin shows times
        assert display.exact(NOW) == "2025-12-07 20:54:03 IST"


def test_a_page_with_room_shows_the_exact_time_and_how_long_ago():
    assert display.exact_and_ago(NOW - timedelta(minutes=5), now=NOW) == (
        '<time datetime="2025-12-07T15:19:03.250000+00:00">2025-12-07 15:19:03 UTC</time> '
        "(5 min ago)"
    )


@pytest.mark.parametrize(
    ("path", "short"),
    [
        ("tests.tasks.add", "tests.tasks.add"),
        ("notifications.tasks.send_digest", "…tasks.send_digest"),
        ("billing.integrations.stripe.webhooks.tasks.reconcile", "…tasks.reconcile"),
        ("reports.tasks.build_quarterly_revenue_report", "…build_quarterly_revenue_report"),
    ],
)
def test_long_task_paths_keep_their_last_parts_and_show_the_whole_on_hover(path, short):
    assert display.short_task(path) == f'<span class="jobs-cut" title="{path}">{short}</span>'


@pytest.mark.parametrize(
    ("seconds", "text"), [(10, "10 s"), (90, "90 s"), (60, "1 min"), (7200, "2 h"), (86400, "1 d")]
)
def test_intervals_read_in_the_largest_whole_unit(seconds, text):
    assert interval(seconds) == text


def test_a_fire_time_on_hover_says_which_zone_is_the_sites_and_which_the_schedules():
    kolkata = Schedule(name="s", task="tests.tasks.add", cron="0 9 * * *", timezone="Asia/Kolkata")
    utc = Schedule(name="s", task="tests.tasks.add", interval_seconds=10, timezone="UTC")
    assert both_zones(kolkata, NOW) == (
        "2025-12-07 15:24:03 UTC (site time)\n"
        "2025-12-07 20:54:03 IST (the schedule's zone, Asia/Kolkata)"
    )
    assert both_zones(utc, NOW) == "2025-12-07 15:24:03 UTC (site time)"


@pytest.mark.django_db
def test_the_breadcrumbs_name_the_app_then_the_model(admin_client):
    page = admin_client.get(reverse("admin:django_jobs_job_changelist")).content.decode()
    assert ">Background jobs</a>" in page
    index = admin_client.get(reverse("admin:app_list", args=["django_jobs"])).content.decode()
    assert "Background jobs administration" in index


def test_a_naive_time_is_shown_as_stored_without_a_zone():
    # USE_TZ = False: the database returns naive times
    naive = datetime(2025, 12, 7, 15, 24, 3)
    assert display.exact(naive) == "2025-12-07 15:24:03"
    assert display.ago(naive, now=naive + timedelta(minutes=2)) == "2 min ago"
