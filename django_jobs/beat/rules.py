"""What makes a schedule valid: the one set of rules used by the model's ``clean()``, the admin
form, the ``JOBS_SCHEDULES`` sync, ``manage.py check`` and the beat before every fire.

``problems(schedule)`` reads the schedule's attribute values as they are (no conversion) and
returns every problem found, by field; it never raises. Values must already have their Python
types: an interval is an ``int`` (``"60"`` is refused), times are aware datetimes.
"""

import inspect
from datetime import datetime

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from django_jobs.beat import fire_times
from django_jobs.exceptions import JobsError
from django_jobs.tasks_api import (
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    InvalidTask,
    InvalidTaskBackend,
)

TIME_FIELDS = ("run_at", "start_at", "end_at")
SECONDS_FIELDS = ("misfire_grace_seconds", "catchup_window_seconds")
MISSED_RUNS = ("skip", "latest", "all")


#: Python types a field's value may have before Django's own field cleaning looks at it.
TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "task": (str,),
    "backend": (str,),
    "cron": (str,),
    "timezone": (str,),
    "queue_name": (str,),
    "description": (str,),
    "missed_runs": (str,),
    "interval_seconds": (int, type(None)),
    "priority": (int, type(None)),
    "misfire_grace_seconds": (int,),
    "catchup_window_seconds": (int,),
    "run_at": (datetime, type(None)),
    "start_at": (datetime, type(None)),
    "end_at": (datetime, type(None)),
    "enabled": (bool,),
}


def wrong_types(schedule) -> list[str]:
    """Fields whose value has the wrong Python type (``problems`` says why)."""
    wrong = []
    for field, types in TYPES.items():
        value = getattr(schedule, field)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wrong.append(field)
    return wrong


def validate(schedule) -> None:
    """Raise ValidationError listing every problem of ``schedule`` (by field)."""
    found = problems(schedule)
    if found:
        raise ValidationError(found)


def problems(schedule) -> dict[str, list[str]]:
    """Every problem of ``schedule``, by field name (``__all__`` for the timing choice)."""
    found: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        found.setdefault(field, []).append(message)

    _check_timing(schedule, add)
    _check_arguments(schedule, add)
    _check_job_options(schedule, add)
    for field in wrong_types(schedule):
        if field not in found:
            kinds = " or ".join("None" if t is type(None) else t.__name__ for t in TYPES[field])
            add(field, f"Must be {kinds}, not {_kind(getattr(schedule, field))}.")
    if not found:
        _check_call(schedule, add)
    return found


def _kind(value) -> str:
    return type(value).__name__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_timing(schedule, add) -> None:
    cron, interval, run_at = schedule.cron, schedule.interval_seconds, schedule.run_at
    if sum([bool(cron), interval is not None, run_at is not None]) != 1:
        add(
            NON_FIELD_ERRORS,
            "Set exactly one of: a cron expression, an interval, or a one-off time.",
        )
    if cron:
        if not isinstance(cron, str):
            add("cron", f"The cron expression must be a string, not {_kind(cron)}.")
        else:
            _catch(add, "cron", fire_times.check_cron, cron)
    if interval is not None and (not _is_int(interval) or interval < 1):
        add(
            "interval_seconds",
            f"The interval must be a whole number of seconds, at least 1 (got {interval!r}).",
        )
    for field in TIME_FIELDS:
        value = getattr(schedule, field)
        if value is not None and not (
            isinstance(value, datetime) and value.utcoffset() is not None
        ):
            add(field, f"Must be an aware datetime (with a time zone), got {value!r}.")
    start, end = schedule.start_at, schedule.end_at
    if _aware(start) and _aware(end) and end <= start:
        add("end_at", "The end must come after the start.")
    if not isinstance(schedule.timezone, str):
        add("timezone", f"The time zone must be an IANA name, not {_kind(schedule.timezone)}.")
    else:
        _catch(add, "timezone", fire_times.zone, schedule.timezone)
    if schedule.missed_runs not in MISSED_RUNS:
        add("missed_runs", f"Use one of {', '.join(MISSED_RUNS)}, not {schedule.missed_runs!r}.")
    for field in SECONDS_FIELDS:
        value = getattr(schedule, field)
        if not _is_int(value) or value < 0:
            add(field, f"Must be a whole number of seconds, 0 or more (got {value!r}).")
    if not isinstance(schedule.enabled, bool):
        add("enabled", f"Must be True or False, not {schedule.enabled!r}.")


def _aware(value) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _check_arguments(schedule, add) -> None:
    from django_jobs.jsonargs import check_json

    args, kwargs = schedule.args, schedule.kwargs
    if not isinstance(args, list):
        add("args", f"args must be a JSON list, e.g. [1, 2], not {_kind(args)} {args!r}.")
    else:
        _catch(add, "args", check_json, args, "args")
    if not isinstance(kwargs, dict):
        add("kwargs", f'kwargs must be a JSON object, e.g. {{"user_id": 1}}, not {_kind(kwargs)}.')
    else:
        _catch(add, "kwargs", check_json, kwargs, "kwargs")


def _check_job_options(schedule, add) -> None:
    from django.conf import settings

    from django_jobs import registry

    priority = schedule.priority
    if priority is not None and (
        not _is_int(priority) or not TASK_MIN_PRIORITY <= priority <= TASK_MAX_PRIORITY
    ):
        add(
            "priority",
            f"The priority must be a whole number from {TASK_MIN_PRIORITY} to "
            f"{TASK_MAX_PRIORITY}, or blank for the task's (got {priority!r}).",
        )
    if not isinstance(schedule.queue_name, str):
        add("queue_name", f"The queue name must be a string, not {_kind(schedule.queue_name)}.")
    backend = schedule.backend
    if not isinstance(backend, str) or backend not in getattr(settings, "TASKS", {}):
        add("backend", f"{backend!r} is not a TASKS alias.")
    if not isinstance(schedule.task, str) or not schedule.task:
        add("task", f"The task must be the dotted path of a declared task, not {schedule.task!r}.")
    else:
        _catch(add, "task", registry.resolve, schedule.task)


def _check_call(schedule, add) -> None:
    """Check the call the beat will make: queue and priority for the backend, the arguments
    against the task's signature."""
    from django_jobs import registry

    task = registry.resolve(schedule.task)
    try:
        task = task.using(
            queue_name=schedule.queue_name or None,
            priority=schedule.priority,
            backend=schedule.backend,
        )
    except (InvalidTask, InvalidTaskBackend, ValueError, TypeError) as e:
        add("queue_name", f"The backend refuses this task: {e}")
        return
    args = ([None] if task.takes_context else []) + list(schedule.args)
    try:
        inspect.signature(task.func).bind(*args, **schedule.kwargs)
    except TypeError as e:
        add("args", f"These arguments do not fit {task.name}(): {e}.")
    except ValueError:
        pass  # no signature to check (a builtin): the call itself will tell


def _catch(add, field: str, check, *args) -> None:
    try:
        check(*args)
    except (JobsError, InvalidTask) as e:
        add(field, str(e))
