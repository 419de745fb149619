"""Schedules declared in JOBS_SCHEDULES: synced at beat start without clobbering the admin."""

import pytest

from django_jobs.beat import actions
from django_jobs.beat.sync import check_declared_schedules, reset_to_code, sync_declared
from django_jobs.models import Schedule

pytestmark = pytest.mark.django_db

EVERY_MINUTE = {"task": "tests.tasks.add", "cron": "* * * * *", "args": [1, 2]}


def sync() -> dict:
    return sync_declared("default")


def test_declared_schedules_are_created_once(settings):
    settings.JOBS_SCHEDULES = {"adder": EVERY_MINUTE}
    assert sync()["created"] == ["adder"]
    row = Schedule.objects.get(name="adder")
    assert (row.task, row.cron, row.args, row.declared_in_code) == (
        "tests.tasks.add",
        "* * * * *",
        [1, 2],
        True,
    )
    assert row.next_fire_at is not None
    assert sync() == {"created": [], "updated": [], "kept": [], "deleted": []}


def test_a_code_change_updates_a_row_no_operator_edited(settings):
    settings.JOBS_SCHEDULES = {"adder": EVERY_MINUTE}
    sync()
    settings.JOBS_SCHEDULES = {"adder": {**EVERY_MINUTE, "cron": "0 * * * *", "args": [5, 5]}}
    assert sync()["updated"] == ["adder"]
    row = Schedule.objects.get(name="adder")
    assert (row.cron, row.args) == ("0 * * * *", [5, 5])
    assert row.next_fire_at.minute == 0


def test_a_code_change_does_not_clobber_an_operator_edit(settings):
    # Given a code-declared schedule that an operator disabled in the admin
    settings.JOBS_SCHEDULES = {"adder": EVERY_MINUTE}
    sync()
    actions.disable(Schedule.objects.filter(name="adder"))
    # When the code definition changes and beat restarts
    settings.JOBS_SCHEDULES = {"adder": {**EVERY_MINUTE, "args": [9, 9]}}
    assert sync()["kept"] == ["adder"]
    # Then the operator's version stays
    row = Schedule.objects.get(name="adder")
    assert (row.enabled, row.args, row.edited_by_operator) == (False, [1, 2], True)
    # And "reset to code definition" takes the code's version back
    assert reset_to_code("default", Schedule.objects.all()) == 1
    row.refresh_from_db()
    assert (row.enabled, row.args, row.edited_by_operator) == (True, [9, 9], False)


def test_an_admin_created_row_with_a_declared_name_is_left_alone(settings):
    Schedule.objects.create(name="adder", task="tests.tasks.add", interval_seconds=30)
    settings.JOBS_SCHEDULES = {"adder": EVERY_MINUTE}
    assert sync()["kept"] == ["adder"]
    assert Schedule.objects.get(name="adder").interval_seconds == 30


def test_rows_that_left_the_code_are_deleted_unless_edited(settings):
    settings.JOBS_SCHEDULES = {"a": EVERY_MINUTE, "b": EVERY_MINUTE}
    sync()
    Schedule.objects.filter(name="b").update(edited_by_operator=True)
    settings.JOBS_SCHEDULES = {}
    report = sync()
    assert (report["deleted"], report["kept"]) == (["a"], ["b"])
    assert list(Schedule.objects.values_list("name", flat=True)) == ["b"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({**EVERY_MINUTE, "cron": "61 * * * *"}, "cron: '61 * * * *' is not a valid cron"),
        ({**EVERY_MINUTE, "cron": "* * *"}, "has 3 field(s)"),
        ({**EVERY_MINUTE, "task": "os.system"}, "'os.system' is not a declared task"),
        ({**EVERY_MINUTE, "interval": 5}, "Set exactly one of"),
        ({**EVERY_MINUTE, "every": 5}, "unknown key(s) every"),
    ],
)
def test_bad_declarations_are_skipped_by_sync_and_fail_the_system_check(
    settings, caplog, entry, message
):
    # Given a bad JOBS_SCHEDULES entry
    settings.JOBS_SCHEDULES = {"bad": entry}
    # When beat syncs
    report = sync()
    # Then the entry is skipped with an error line naming it, and no row is written
    assert report["created"] == []
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("JOBS_SCHEDULES['bad']" in line and message in line for line in logged)
    assert not Schedule.objects.exists()
    # And `check` reports it (E010)
    errors = check_declared_schedules()
    assert [error.id for error in errors] == ["django_jobs.E010"]
    assert message in errors[0].msg
