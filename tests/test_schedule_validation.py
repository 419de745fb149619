"""Schedule validation: one set of rules for the model, the admin form, JOBS_SCHEDULES and the
beat; every problem reported at once, a bad row skipped at fire time."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from django_jobs.beat.loop import Beat
from django_jobs.beat.sync import check_declared_schedules, sync_declared
from django_jobs.models import Job, Schedule
from tests.test_beat_admin import form_data

pytestmark = pytest.mark.django_db

ADD = "tests.tasks.add"
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def errors_of(schedule: Schedule) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as e:
        schedule.full_clean()
    return e.value.message_dict


def test_full_clean_rejects_args_object_kwargs_list_and_priority_500_at_once():
    # Given a schedule whose call could never run as meant
    schedule = Schedule(
        name="s", task=ADD, interval_seconds=60, args={"a": 1}, kwargs=[1, 2], priority=500
    )
    # When it is validated
    errors = errors_of(schedule)
    # Then each problem is reported, on its own field, in the same error
    assert "must be a JSON list" in " ".join(errors["args"])
    assert "must be a JSON object" in " ".join(errors["kwargs"])
    assert "from -100 to 100" in " ".join(errors["priority"])


def test_full_clean_rejects_arguments_that_do_not_fit_the_task():
    # Given add(a, b) scheduled with one positional argument and an unknown keyword
    schedule = Schedule(name="s", task=ADD, interval_seconds=60, args=[1], kwargs={"c": 2})
    # When it is validated
    # Then the arguments are refused, naming the task
    assert "do not fit add()" in " ".join(errors_of(schedule)["args"])


def test_full_clean_rejects_a_queue_the_backend_does_not_have(settings):
    # Given a backend with a fixed list of queues
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": ["default", "emails", "reports"],
        }
    }
    schedule = Schedule(name="s", task=ADD, interval_seconds=60, args=[1, 2], queue_name="nope")
    # When it is validated
    # Then the queue is refused
    assert "nope" in " ".join(errors_of(schedule)["queue_name"])


def test_a_valid_schedule_passes():
    Schedule(name="s", task=ADD, cron="0 3 * * *", args=[1, 2], priority=10).full_clean()


def test_the_admin_form_refuses_args_object_kwargs_list_and_priority_500(admin_client):
    # Given the add form filled in with the three mistakes
    data = form_data(args='{"a": 1}', kwargs="[1, 2]", priority="500")
    # When it is posted
    response = admin_client.post(reverse("admin:django_jobs_schedule_add"), data)
    # Then the page comes back with the three messages and nothing is saved
    page = response.content.decode()
    assert response.status_code == 200
    assert "must be a JSON list" in page
    assert "must be a JSON object" in page
    assert "from -100 to 100" in page
    assert not Schedule.objects.exists()


def test_check_reports_every_bad_jobs_schedules_entry(settings):
    # Given three bad entries (a naive run_at, an interval as a string, a priority of 500)
    # and a good one
    settings.JOBS_SCHEDULES = {
        "naive": {"task": ADD, "run_at": datetime(2030, 1, 1, 3, 0), "args": [1, 2]},
        "string interval": {"task": ADD, "interval": "60", "args": [1, 2]},
        "loud": {"task": ADD, "interval": 60, "args": [1, 2], "priority": 500},
        "good": {"task": ADD, "interval": 60, "args": [1, 2]},
    }
    # When the system checks run
    errors = check_declared_schedules()
    # Then each bad entry has its own E010, saying what is wrong
    assert [e.id for e in errors] == ["django_jobs.E010"] * 3
    text = "\n".join(e.msg for e in errors)
    assert "JOBS_SCHEDULES['naive']: run_at: Must be an aware datetime" in text
    assert "JOBS_SCHEDULES['string interval']: interval_seconds:" in text
    assert "got '60'" in text
    assert "JOBS_SCHEDULES['loud']: priority:" in text
    assert "good" not in text


def test_sync_skips_bad_entries_and_syncs_the_good_ones(settings, caplog):
    # Given a bad entry that used to crash beat with a TypeError, and a good one
    settings.JOBS_SCHEDULES = {
        "string interval": {"task": ADD, "interval": "60", "args": [1, 2]},
        "naive": {"task": ADD, "run_at": datetime(2030, 1, 1, 3, 0), "args": [1, 2]},
        "good": {"task": ADD, "interval": 60, "args": [1, 2]},
    }
    # When beat syncs
    report = sync_declared("default")
    # Then only the good one is written, and each bad one is logged as skipped
    assert report["created"] == ["good"]
    assert list(Schedule.objects.values_list("name", flat=True)) == ["good"]
    skipped = [r.getMessage() for r in caplog.records if "invalid, skipped" in r.getMessage()]
    assert len(skipped) == 2


def test_a_bad_entry_keeps_its_last_good_row(settings):
    # Given a declared schedule synced while it was good
    settings.JOBS_SCHEDULES = {"adder": {"task": ADD, "interval": 60, "args": [1, 2]}}
    sync_declared("default")
    # When its definition turns bad in code
    settings.JOBS_SCHEDULES = {"adder": {"task": ADD, "interval": "60", "args": [1, 2]}}
    report = sync_declared("default")
    # Then the row is neither deleted nor overwritten
    assert report == {"created": [], "updated": [], "kept": [], "deleted": []}
    assert Schedule.objects.get(name="adder").interval_seconds == 60


@pytest.mark.django_db(transaction=True)
def test_a_bad_row_already_in_the_table_is_skipped_and_reported_others_fire():
    # Given two schedules due at T0+10s; one row was made bad behind clean()'s back
    # (args as an object: it used to run add("a") with the object's keys)
    good = Schedule.objects.create(name="good", task=ADD, interval_seconds=10, args=[1, 2])
    bad = Schedule.objects.create(name="bad", task=ADD, interval_seconds=10, args=[1, 2])
    Schedule.objects.update(next_fire_at=T0 + timedelta(seconds=10))
    Schedule.objects.filter(pk=bad.pk).update(args={"a": 1, "b": 2})
    # When beat ticks
    Beat().tick(T0 + timedelta(seconds=10))
    # Then the good one fired, the bad one enqueued nothing and says why
    assert list(Job.objects.values_list("args", flat=True)) == [[1, 2]]
    bad.refresh_from_db()
    good.refresh_from_db()
    assert "args must be a JSON list" in bad.last_error
    assert bad.next_fire_at == T0 + timedelta(seconds=20)  # tried again at its next time
    assert good.last_error == ""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "bad",
    [
        {"args": {"a": 1, "b": 2}},
        {"kwargs": [1, 2]},
        {"priority": 500},
        {"task": "os.system"},
        {"timezone": "Mars/Olympus", "interval_seconds": None, "cron": "0 3 * * *"},
        {"cron": "bogus", "interval_seconds": None},
        {"interval_seconds": 0},
        {"missed_runs": "never"},
        {"kwargs": {"c": 1}},
    ],
    ids=str,
)
def test_any_bad_row_is_reported_on_the_row_and_never_stops_the_others(bad, caplog):
    # Given a good schedule and a row made bad by raw writes, both due
    good = Schedule.objects.create(name="good", task=ADD, interval_seconds=10, args=[1, 2])
    row = Schedule.objects.create(name="bad", task=ADD, interval_seconds=10, args=[1, 2])
    Schedule.objects.update(next_fire_at=T0 + timedelta(seconds=10))
    Schedule.objects.filter(pk=row.pk).update(**bad)
    # When beat ticks
    Beat().tick(T0 + timedelta(seconds=10))
    # Then the good one fired, the bad one enqueued nothing and says why on its row,
    # and no traceback was logged
    assert Job.objects.get().args == [1, 2]
    row.refresh_from_db()
    assert row.last_error
    assert not [r for r in caplog.records if r.exc_info]
    good.refresh_from_db()
    assert good.last_job_id is not None


def test_jobs_schedules_that_is_not_a_dict_is_one_error_and_deletes_nothing(settings):
    # Given a synced code schedule, then JOBS_SCHEDULES replaced by a list by mistake
    settings.JOBS_SCHEDULES = {"adder": {"task": ADD, "interval": 60, "args": [1, 2]}}
    sync_declared("default")
    settings.JOBS_SCHEDULES = [{"task": ADD, "interval": 60}]
    # When the checks run and beat syncs
    errors = check_declared_schedules()
    report = sync_declared("default")
    # Then one E010 says what JOBS_SCHEDULES must be, and the existing row is untouched
    assert [e.id for e in errors] == ["django_jobs.E010"]
    assert "must be a dict of name -> definition, not list" in errors[0].msg
    assert report["deleted"] == []
    assert Schedule.objects.filter(name="adder").exists()
