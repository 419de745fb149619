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
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from .schedules import Schedule

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


def declared() -> dict[str, dict]:
    """The ``JOBS_SCHEDULES`` entries as Schedule field values, validated."""
    entries = getattr(settings, "JOBS_SCHEDULES", {}) or {}
    if not isinstance(entries, dict):
        raise ImproperlyConfigured("JOBS_SCHEDULES must be a dict of name -> definition.")
    return {name: _fields(name, entry) for name, entry in entries.items()}


def _fields(name: str, entry: dict) -> dict:
    where = f"JOBS_SCHEDULES[{name!r}]"
    unknown = set(entry) - set(KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"{where} has unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(KEYS)}."
        )
    fields = {KEYS[key]: value for key, value in entry.items()}
    for field in SECONDS & set(fields):
        if isinstance(fields[field], timedelta):
            fields[field] = int(fields[field].total_seconds())
    if "cron" in fields:
        fields["cron"] = " ".join(str(fields["cron"]).split())
    schedule = Schedule(name=name, **fields)
    try:
        schedule.clean_fields(exclude=["name"])
        schedule.clean()
    except ValidationError as e:
        raise ImproperlyConfigured(f"{where}: {_messages(e)}") from e
    fields["cron"] = schedule.cron
    return fields


def _messages(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
    return " ".join(error.messages)


def code_hash(fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sync_declared(database: str, backend: str = "default") -> dict[str, list[str]]:
    """Bring the table in line with JOBS_SCHEDULES for ``backend``; return what changed."""
    wanted = {n: f for n, f in declared().items() if f.get("backend", "default") == backend}
    report: dict[str, list[str]] = {"created": [], "updated": [], "kept": [], "deleted": []}
    with transaction.atomic(using=database):
        rows = Schedule.objects.using(database).select_for_update()
        rows = rows.filter(Q(name__in=wanted) | (~Q(code_hash="") & Q(backend=backend)))
        existing = {row.name: row for row in rows}
        for name, fields in wanted.items():
            _sync_one(database, name, fields, existing.get(name), report)
        for name, row in existing.items():
            if name in wanted or not row.code_hash:
                continue
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
    wanted = declared()
    count = 0
    for row in schedules.filter(~Q(code_hash="")):
        if row.name in wanted:
            apply(row, wanted[row.name], code_hash(wanted[row.name]), database)
            count += 1
    return count


def discover_tasks() -> None:
    """Import every tasks module, including each JobsBackend's ``task_modules``."""
    from django.tasks import task_backends

    from . import registry
    from .backend import JobsBackend

    for backend in task_backends.all():
        if isinstance(backend, JobsBackend):
            registry.autodiscover(backend.jobs_options.task_modules)


@checks.register()
def check_declared_schedules(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Report a bad JOBS_SCHEDULES entry in ``manage.py check``."""
    discover_tasks()
    try:
        declared()
    except ImproperlyConfigured as e:
        return [checks.Error(str(e), id="django_jobs.E010")]
    return []
