"""Property-based tests (hypothesis): whatever values reach schedule validation or the OPTIONS
checks, only a clean error comes back (ValidationError, check messages), never another
exception, and nothing is half-written (an invalid schedule leaves no row)."""

from datetime import UTC, timedelta

import pytest
from django.core import checks
from django.core.exceptions import ValidationError
from django.test import override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from django_jobs.admin.schedules import ScheduleForm
from django_jobs.beat.sync import KEYS, check_declared_schedules, sync_declared
from django_jobs.checks.options import RULES
from django_jobs.models import Schedule
from tests.test_beat_admin import form_data

pytestmark = pytest.mark.django_db

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Anything a settings file, a form or a raw row could hold.
ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(days=-10), max_value=timedelta(days=10)),
)

#: Per field: values that are often valid, mixed with anything at all.
FIELDS = {
    "task": st.sampled_from(["tests.tasks.add", "tests.tasks.echo", "os.system", ""]) | ANY,
    "cron": st.sampled_from(["* * * * *", "0 3 * * *", "61 * * * *", "@daily", ""]) | ANY,
    "interval_seconds": st.none() | st.integers(-5, 10_000) | ANY,
    "run_at": st.none() | st.datetimes(timezones=st.just(UTC)) | ANY,
    "timezone": st.sampled_from(["UTC", "Europe/Berlin", "America", "Mars/Olympus"]) | ANY,
    "args": st.just([1, 2]) | ANY,
    "kwargs": st.just({}) | ANY,
    "queue_name": st.sampled_from(["", "default", "emails"]) | ANY,
    "priority": st.none() | st.integers(-200, 200) | ANY,
    "backend": st.just("default") | ANY,
    "missed_runs": st.sampled_from(["skip", "latest", "all", "sometimes"]) | ANY,
    "misfire_grace_seconds": st.integers(-5, 100) | ANY,
    "catchup_window_seconds": st.integers(-5, 100) | ANY,
    "start_at": st.none() | st.datetimes(timezones=st.just(UTC)) | ANY,
    "end_at": st.none() | st.datetimes(timezones=st.just(UTC)) | ANY,
    "enabled": st.booleans() | ANY,
}


#: A valid schedule: the examples change up to two of its fields, so both outcomes are seen.
VALID = {"task": "tests.tasks.add", "interval_seconds": 60, "args": [1, 2]}


def some_fields():
    near_valid = st.lists(st.sampled_from(list(FIELDS)), max_size=2, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({key: FIELDS[key] for key in keys})
    )
    return st.fixed_dictionaries({}, optional=FIELDS) | near_valid.map(lambda f: {**VALID, **f})


@FAST
@given(fields=some_fields())
def test_model_validation_raises_only_validation_error_and_valid_rows_save(fields):
    # Given a schedule with arbitrary field values
    Schedule.objects.all().delete()
    schedule = Schedule(name="p", **fields)
    # When it is validated
    try:
        schedule.full_clean()
    except ValidationError:
        # Then an invalid one raises ValidationError only (anything else fails the test)
        event("invalid")
        return
    event("valid")
    # And a valid one saves, and beat can compute its fire times
    schedule.save()
    schedule.upcoming(2)
    assert Schedule.objects.count() == 1


def form_text(value) -> str:
    return "" if value is None else str(value)


@FAST
@given(fields=some_fields())
def test_the_admin_form_saves_a_valid_schedule_or_nothing(fields):
    # Given the add form posted with arbitrary text in every field
    Schedule.objects.all().delete()
    data = {
        **form_data(name="p"),
        "interval_seconds": "",
        **{k: form_text(v) for k, v in fields.items()},
    }
    form = ScheduleForm(data=data)
    # When it is validated
    if not form.is_valid():
        # Then an invalid form writes no row
        event("invalid")
        assert not Schedule.objects.exists()
        return
    event("valid")
    # And a valid one saves a row the rules accept
    form.save()
    Schedule.objects.get().full_clean()


@FAST
@given(
    entry=st.fixed_dictionaries({}, optional=dict.fromkeys(KEYS, ANY))
    | ANY
    | st.fixed_dictionaries({"interval": st.integers(1, 3600)}).map(
        lambda e: {"task": "tests.tasks.add", "args": [1, 2], **e}
    )
)
def test_jobs_schedules_entries_give_check_errors_and_only_valid_rows(entry):
    # Given an arbitrary JOBS_SCHEDULES entry (or a value that is no entry at all)
    Schedule.objects.all().delete()
    with override_settings(JOBS_SCHEDULES={"p": entry}):
        # When the check runs and beat syncs
        errors = check_declared_schedules()
        sync_declared("default")
    # Then the check gives E010 errors only, and a row exists only for a valid entry
    assert {e.id for e in errors} <= {"django_jobs.E010"}
    rows = list(Schedule.objects.all())
    assert len(rows) == (0 if errors else 1)
    event("valid" if rows else "invalid")
    for row in rows:
        row.full_clean()


OPTIONS = st.fixed_dictionaries(
    {}, optional={key: ANY | st.just(["tests.tasks"]) for key in RULES} | {"colour": ANY}
)


@FAST
@given(options=OPTIONS | ANY)
def test_options_checks_return_messages_never_raise(options):
    # Given a backend with arbitrary OPTIONS
    tasks_setting = {
        "default": {"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": [], "OPTIONS": options}
    }
    with override_settings(TASKS=tasks_setting):
        from django_jobs.tasks_api import task_backends

        # When every check runs
        messages = task_backends["default"].check()
        messages += checks.run_checks(tags=["tasks"])
    # Then only check messages come back, and a bad value is an error naming its key
    assert all(isinstance(m, checks.CheckMessage) for m in messages)
    if isinstance(options, dict):
        for key, (accepts, _) in RULES.items():
            if key in options and not accepts(options[key]):
                assert any(f"['{key}']" in m.msg and m.is_serious() for m in messages), key
    else:
        assert any(m.id == "django_jobs.E020" for m in messages)
