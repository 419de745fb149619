"""Failed jobs grouped by task and exception class (the class of each job's last error).

The class is read from inside ``Job.errors`` (a JSON list) by the database itself
(``LastErrorClass``), with no column of its own. The scan is bounded twice: to FAILED jobs that
finished within a window (a range of the ``(status, finished_at)`` index, newest first) and to
the ``SCAN_LIMIT`` most recent of them. Groups are counted from that scan in Python: two
queries per page (the scan and the sample tracebacks), whatever the history.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import CharField, Func, Value
from django.db.models.functions import Coalesce

from django_jobs.jobs.models import Job, JobQuerySet
from django_jobs.jobs.status import JobStatus

#: The windows the page offers, by the name in its URL.
WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}
DEFAULT_WINDOW = "day"
#: At most this many failed jobs are read per page; beyond, counts are of the newest ones.
SCAN_LIMIT = 10_000
#: At most this many groups are shown (most failures first).
GROUPS_SHOWN = 50

#: The last entry's ``exception_class_path`` of a JSON list column, per vendor.
_LAST_CLASS = {
    "postgresql": "(%(expressions)s -> -1 ->> 'exception_class_path')",
    "sqlite": "json_extract(%(expressions)s, '$[#-1].exception_class_path')",
    # MariaDB has no '$[last]' before 10.9 and MySQL no negative index: build the path
    # (only for a list that has an entry: MySQL refuses the path '$[-1]').
    "mysql": (
        "CASE WHEN JSON_LENGTH(%(expressions)s) > 0 THEN "
        "JSON_UNQUOTE(JSON_EXTRACT(%(expressions)s, CONCAT('$[', "
        "JSON_LENGTH(%(expressions)s) - 1, '].exception_class_path'))) END"
    ),
}


class LastErrorClass(Func):
    """The exception class path of the last entry of ``Job.errors`` ("" when there is none)."""

    output_field = CharField()

    def __init__(self, column: str = "errors", **extra):
        super().__init__(column, **extra)

    def as_sql(self, compiler, connection, **extra):
        template = _LAST_CLASS[connection.vendor]
        return super().as_sql(compiler, connection, template=template, **extra)


def last_error_class():
    return Coalesce(LastErrorClass(), Value(""), output_field=CharField())


@dataclass
class Group:
    """Failed jobs of one task whose last error was of one exception class."""

    task_path: str
    exception_class: str
    count: int
    first_seen: datetime
    last_seen: datetime
    sample_id: object
    sample_error: dict = field(default_factory=dict)

    @property
    def exception_name(self) -> str:
        return self.exception_class.rpartition(".")[2] or "(no error recorded)"


@dataclass
class Failures:
    groups: list[Group]
    scanned: int
    truncated: bool
    since: datetime


def since(now: datetime, window: str) -> datetime:
    return now - WINDOWS.get(window, WINDOWS[DEFAULT_WINDOW])


def failed_since(database: str, start: datetime, task: str | None = None) -> JobQuerySet:
    """FAILED jobs that finished at or after ``start`` (a range of the ``finished_at`` index)."""
    jobs = Job.objects.using(database).filter(status=JobStatus.FAILED, finished_at__gte=start)
    return jobs.filter(task_path=task) if task else jobs


def groups(database: str, now: datetime, window: str, task: str | None = None) -> Failures:
    """The failure groups of the window, most failures first, each with a sample error."""
    start = since(now, window)
    rows = list(
        failed_since(database, start, task)
        .annotate(exception_class=last_error_class())
        .order_by("-finished_at")
        .values_list("pk", "task_path", "exception_class", "finished_at")[: SCAN_LIMIT + 1]
    )
    truncated = len(rows) > SCAN_LIMIT
    found: dict[tuple[str, str], Group] = {}
    for pk, path, cls, finished in rows[:SCAN_LIMIT]:
        group = found.get((path, cls))
        if group is None:  # rows come newest first: the first one is the group's sample
            found[path, cls] = Group(path, cls, 1, finished, finished, pk)
        else:
            group.count += 1
            group.first_seen = finished
    shown = sorted(found.values(), key=lambda g: (-g.count, g.task_path, g.exception_class))
    shown = shown[:GROUPS_SHOWN]
    _add_samples(database, shown)
    return Failures(shown, min(len(rows), SCAN_LIMIT), truncated, start)


def _add_samples(database: str, shown: list[Group]) -> None:
    by_id = {g.sample_id: g for g in shown}
    samples = Job.objects.using(database).filter(pk__in=list(by_id)).values_list("pk", "errors")
    for pk, errors in samples:
        by_id[pk].sample_error = errors[-1] if errors else {}


def group_jobs(
    database: str, start: datetime, end: datetime, task: str, exception_class: str
) -> JobQuerySet:
    """The FAILED jobs of one group: ``task``, last error of ``exception_class``, finished
    between ``start`` and ``end`` (the window the operator saw)."""
    jobs = failed_since(database, start, task).filter(finished_at__lte=end)
    return jobs.alias(exception_class=last_error_class()).filter(exception_class=exception_class)
