"""The schedule admin: list, validation, preview, enable/disable and run-now actions."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from django_jobs.models import Job, Schedule

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_jobs_schedule_changelist")


def form_data(**overrides) -> dict:
    data = {
        "name": "nightly",
        "task": "tests.tasks.add",
        "description": "",
        "enabled": "on",
        "cron": "0 3 * * *",
        "interval_seconds": "",
        "timezone": "Europe/Berlin",
        "args": "[1, 2]",
        "kwargs": "{}",
        "queue_name": "",
        "priority": "",
        "backend": "default",
        "missed_runs": "latest",
        "misfire_grace_seconds": "60",
        "catchup_window_seconds": "86400",
    }
    data.update(overrides)
    return data


def test_changelist_shows_next_fire_time_and_last_result(admin_client):
    schedule = Schedule.objects.create(name="s", task="tests.tasks.add", interval_seconds=60)
    job_id = enqueue_add()
    Schedule.objects.filter(pk=schedule.pk).update(last_job_id=job_id)
    page = admin_client.get(CHANGELIST).content.decode()
    assert "every 1 min" in page
    assert "jobs-status-ready" in page
    assert reverse("admin:django_jobs_job_change", args=[job_id]) in page


def enqueue_add():
    from tests.tasks import add

    return add.enqueue(1, 2).id


def test_adding_a_schedule_validates_the_cron_with_a_clear_message(admin_client):
    response = admin_client.post(
        reverse("admin:django_jobs_schedule_add"), form_data(cron="61 3 * * *")
    )
    assert response.status_code == 200
    assert "is not a valid cron expression" in response.content.decode()
    assert not Schedule.objects.exists()


def test_the_change_page_previews_the_next_five_fire_times(admin_client):
    response = admin_client.post(reverse("admin:django_jobs_schedule_add"), form_data())
    assert response.status_code == 302
    schedule = Schedule.objects.get()
    page = admin_client.get(
        reverse("admin:django_jobs_schedule_change", args=[schedule.pk])
    ).content.decode()
    upcoming = page.split("<ol>")[1].split("</ol>")[0]
    assert upcoming.count("03:00:00 CE") == 5  # CET or CEST, local to the schedule
    assert "tests.tasks.add" in page


def test_enable_and_disable_actions(admin_client):
    schedule = Schedule.objects.create(name="s", task="tests.tasks.add", interval_seconds=60)
    other = Schedule.objects.create(name="t", task="tests.tasks.add", interval_seconds=60)
    response = admin_client.post(
        CHANGELIST,
        {"action": "disable_schedules", "_selected_action": [schedule.pk, other.pk]},
        follow=True,
    )
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_fire_at) == (False, None)
    assert [str(m) for m in response.context["messages"]] == ["Disabled 2 schedules."]
    response = admin_client.post(
        CHANGELIST, {"action": "enable_schedules", "_selected_action": [schedule.pk]}, follow=True
    )
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_fire_at is not None
    assert [str(m) for m in response.context["messages"]] == ["Enabled 1 schedule."]


def test_run_now_enqueues_a_job_without_moving_the_schedule(admin_client):
    schedule = Schedule.objects.create(
        name="s", task="tests.tasks.add", args=[1, 2], cron="0 3 * * *"
    )
    next_fire_at = schedule.next_fire_at
    admin_client.post(CHANGELIST, {"action": "run_now", "_selected_action": [schedule.pk]})
    job = Job.objects.get()
    schedule.refresh_from_db()
    assert (job.task_path, job.args) == ("tests.tasks.add", [1, 2])
    assert str(schedule.last_job_id) == str(job.pk)
    assert schedule.next_fire_at == next_fire_at


def test_run_now_needs_the_change_permission(client, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_schedule"))
    client.force_login(viewer)
    schedule = Schedule.objects.create(name="s", task="tests.tasks.add", cron="0 3 * * *")
    page = client.get(CHANGELIST).content.decode()
    assert "run_now" not in page
    client.post(CHANGELIST, {"action": "run_now", "_selected_action": [schedule.pk]})
    assert not Job.objects.exists()


def test_editing_a_code_declared_schedule_marks_it_edited(admin_client):
    schedule = Schedule.objects.create(
        name="nightly", task="tests.tasks.add", cron="0 3 * * *", code_hash="abc"
    )
    response = admin_client.post(
        reverse("admin:django_jobs_schedule_change", args=[schedule.pk]),
        form_data(cron="0 4 * * *"),
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.edited_by_operator) == ("0 4 * * *", True)


def failing_schedule(name: str, error: str) -> Schedule:
    schedule = Schedule.objects.create(name=name, task="tests.tasks.add", interval_seconds=60)
    Schedule.objects.filter(pk=schedule.pk).update(last_error=error)
    return schedule


def test_a_failing_schedule_shows_as_failing_in_the_list_with_its_error(admin_client):
    # Given a schedule whose every fire fails with a long error
    error = "InvalidTask: priority must be between -100 and 100; " + "x" * 200
    failing_schedule("broken", error)
    # When the changelist is shown
    page = admin_client.get(CHANGELIST).content.decode()
    # Then its row says "failing" with the start of the error, the whole of it on hover
    assert "<strong>failing</strong>: InvalidTask: priority must be between" in page
    assert f'title="{error}"' in page
    assert "x" * 200 not in page.replace(f'title="{error}"', "")


def test_a_failing_schedules_error_is_near_the_top_of_its_page(admin_client):
    # Given a failing schedule
    schedule = failing_schedule("broken", "UnknownTask: 'x.y' is not a declared task")
    # When its change page is shown
    page = admin_client.get(
        reverse("admin:django_jobs_schedule_change", args=[schedule.pk])
    ).content.decode()
    # Then the error comes before the form's first field
    error_at = page.index("Failing: UnknownTask: &#x27;x.y&#x27; is not a declared task")
    assert error_at < page.index('name="name"')


def test_run_now_runs_each_schedule_that_can_and_names_each_that_cannot(admin_client):
    # Given two good schedules and one whose row went bad behind clean()'s back
    good = [
        Schedule.objects.create(name=n, task="tests.tasks.add", cron="0 3 * * *", args=[1, 2])
        for n in ("first", "second")
    ]
    bad = Schedule.objects.create(name="bad one", task="tests.tasks.add", cron="0 3 * * *")
    Schedule.objects.filter(pk=bad.pk).update(priority=500)
    # When all three are run now
    selected = [s.pk for s in (*good, bad)]
    response = admin_client.post(
        CHANGELIST, {"action": "run_now", "_selected_action": selected}, follow=True
    )
    # Then the good ones are enqueued, and one message names the bad one and why
    messages = [str(m) for m in response.context["messages"]]
    assert Job.objects.count() == 2
    assert "Enqueued 2 jobs." in messages
    failures = [m for m in messages if "bad one" in m]
    assert len(failures) == 1 and "priority" in failures[0]


def test_the_change_page_gives_fire_times_to_the_second_in_both_zones(admin_client):
    # Given a schedule read in Asia/Kolkata that fired at a known second
    schedule = Schedule.objects.create(
        name="s", task="tests.tasks.add", cron="0 9 * * *", timezone="Asia/Kolkata"
    )
    fired = datetime(2025, 12, 7, 3, 30, 7, tzinfo=UTC)
    Schedule.objects.filter(pk=schedule.pk).update(last_fired_at=fired)
    # When its page is shown
    page = admin_client.get(
        reverse("admin:django_jobs_schedule_change", args=[schedule.pk])
    ).content.decode()
    # Then the last fire time is given to the second in the site's zone and in the schedule's
    assert "d ago<br>2025-12-07 03:30:07 UTC (site time)<br>" in page
    assert "2025-12-07 09:00:07 IST (the schedule&#x27;s zone, Asia/Kolkata)" in page
