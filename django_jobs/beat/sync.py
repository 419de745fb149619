"""Schedules declared in code (the ``JOBS_SCHEDULES`` setting), synced into the table.

Each synced row stores the hash of its code definition. At beat start a row is created when
missing, and updated when its definition changed in code, unless an operator edited it in
the admin (``edited_by_operator``): then the operator's version wins and a warning is logged
until someone uses the admin's "Reset to code definition" action. Rows whose definition left
the code are deleted, again unless an operator edited them.
"""

import hashlib
import json
import logging
from datetime import timedelta

from django.conf import settings
from django.core import checks
from django.core.exceptions import NON_FIELD_ERRORS, ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from django_jobs.beat import fire_times, rules
from django_jobs.beat.models import Schedule

logger = logging.getLogger(__name__)

#: Keys of a JOBS_SCHEDULES entry and the Schedule fields they set.
KEYS = {
    "task": "task",
    "cron": "cron",
    "interval": "interval_seconds",
    "run_at": "run_at",
    "timezone": "timezone",
    "args": "args",
    "kwargs": "kwargs",
    "queue_name": "queue_name",
    "priority": "priority",
    "enabled": "enabled",
    "missed_runs": "missed_runs",
    "misfire_grace": "misfire_grace_seconds",
    "catchup_window": "catchup_window_seconds",
    "start_at": "start_at",
    "end_at": "end_at",
    "backend": "backend",
    "description": "description",
}
SECONDS = {"interval_seconds", "misfire_grace_seconds", "catchup_window_seconds"}


def validated() -> tuple[dict[str, dict], dict[str, str]]:
    """The valid ``JOBS_SCHEDULES`` entries as Schedule field values, and the invalid ones'
    error messages, each by name. Never raises."""
    entries = getattr(settings, "JOBS_SCHEDULES", {}) or {}
    if not isinstance(entries, dict):
        message = f"JOBS_SCHEDULES must be a dict of name -> definition, not {_kind(entries)}."
        return {}, {"": message}
    good, bad = {}, {}
    for name, entry in entries.items():
        try:
            good[name] = _fields(name, entry)
        except ImproperlyConfigured as e:
            bad[name] = str(e)
    return good, bad


def _kind(value) -> str:
    return type(value).__name__


def _fields(name, entry) -> dict:
    where = f"JOBS_SCHEDULES[{name!r}]"
    if not isinstance(name, str) or not name:
        raise ImproperlyConfigured(f"{where}: the name must be a non-empty string.")
    if not isinstance(entry, dict):
        raise ImproperlyConfigured(f"{where} must be a dict (task, cron…), not {_kind(entry)}.")
    unknown = set(entry) - set(KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"{where} has unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"known: {', '.join(KEYS)}."
        )
    fields = {KEYS[key]: value for key, value in entry.items()}
    for field in SECONDS & set(fields):
        if isinstance(fields[field], timedelta):
            fields[field] = int(fields[field].total_seconds())
    if isinstance(fields.get("cron"), str):
        fields["cron"] = " ".join(fields["cron"].split())
    schedule = Schedule(name=name, **fields)
    errors = rules.problems(schedule)  # on the values as written: "60" is no int
    try:
        schedule.clean_fields(exclude=["name", *errors])
    except ValidationError as e:
        errors.update(e.message_dict)
    if errors:
        raise ImproperlyConfigured(f"{where}: {_messages(errors)}")
    if fields.get("cron"):
        fields["cron"] = fire_times.check_cron(fields["cron"])
    return fields


def _messages(errors: dict[str, list[str]]) -> str:
    return "; ".join(
        " ".join(v) if k == NON_FIELD_ERRORS else f"{k}: {' '.join(v)}" for k, v in errors.items()
    )


def code_hash(fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sync_declared(database: str, backend: str = "default") -> dict[str, list[str]]:
    """Bring the table in line with JOBS_SCHEDULES for ``backend``; return what changed."""
    good, bad = validated()
    for name, message in bad.items():
        logger.error(
            "schedule in JOBS_SCHEDULES is invalid, skipped name=%s error=%s", name, message
        )
    if "" in bad:
        return {"created": [], "updated": [], "kept": [], "deleted": []}
    wanted = {n: f for n, f in good.items() if f.get("backend", "default") == backend}
    report: dict[str, list[str]] = {"created": [], "updated": [], "kept": [], "deleted": []}
    with transaction.atomic(using=database):
        rows = Schedule.objects.using(database).select_for_update()
        rows = rows.filter(Q(name__in=wanted) | (~Q(code_hash="") & Q(backend=backend)))
        existing = {row.name: row for row in rows}
        for name, fields in wanted.items():
            _sync_one(database, name, fields, existing.get(name), report)
        for name, row in existing.items():
            if name in wanted or name in bad or not row.code_hash:
                continue  # a bad entry keeps its last good row until it is fixed
            if row.edited_by_operator:
                logger.warning("schedule left JOBS_SCHEDULES but was edited, kept name=%s", name)
                report["kept"].append(name)
            else:
                row.delete()
                report["deleted"].append(name)
    logger.info("schedules synced %s", " ".join(f"{k}={len(v)}" for k, v in report.items()))
    return report


def _sync_one(database: str, name: str, fields: dict, row, report) -> None:
    digest = code_hash(fields)
    if row is None:
        try:
            with transaction.atomic(using=database):
                row = Schedule(name=name, code_hash=digest, **fields)
                row.save(using=database)
            report["created"].append(name)
        except IntegrityError:
            pass  # another beat starting at the same time created it
    elif row.code_hash == digest:
        return
    elif row.edited_by_operator or not row.code_hash:
        logger.warning(
            "schedule changed in code but an operator owns the row, not updated name=%s", name
        )
        report["kept"].append(name)
    else:
        apply(row, fields, digest, database)
        report["updated"].append(name)


def apply(row: Schedule, fields: dict, digest: str, database: str) -> None:
    """Overwrite ``row`` with its code definition."""
    defaults = {KEYS[key]: Schedule._meta.get_field(KEYS[key]).get_default() for key in KEYS}
    for field, value in {**defaults, **fields}.items():
        setattr(row, field, value)
    row.code_hash, row.edited_by_operator = digest, False
    row.save(using=database)


def reset_to_code(database: str, schedules) -> int:
    """Give operator-edited rows back their code definition (the admin action)."""
    wanted, _ = validated()
    count = 0
    for row in schedules.filter(~Q(code_hash="")):
        if row.name in wanted:
            apply(row, wanted[row.name], code_hash(wanted[row.name]), database)
            count += 1
    return count


def discover_tasks() -> None:
    """Import every tasks module, including each JobsBackend's ``task_modules``."""
    from django_jobs import registry
    from django_jobs.backend import JobsBackend
    from django_jobs.tasks_api import task_backends

    for backend in task_backends.all():
        if isinstance(backend, JobsBackend):
            try:
                registry.autodiscover(backend.jobs_options.task_modules)
            except (ImproperlyConfigured, ImportError):
                pass  # the OPTIONS checks report a bad task_modules (E020)


@checks.register()
def check_declared_schedules(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Report every bad JOBS_SCHEDULES entry in ``manage.py check``, one error each."""
    discover_tasks()
    _, bad = validated()
    return [
        checks.Error(
            message,
            hint="See docs/periodic-jobs.md (validation rules) for what each key takes.",
            id="django_jobs.E010",
        )
        for message in bad.values()
    ]
