"""What ``runworker`` and ``runbeat`` print, with or without the project's ``LOGGING``.

Django's default logging has no handler for ``django_jobs``, so a fresh project would see
nothing of a worker's INFO lines (its start-up banner, each schedule fired) and only the bare
messages of its warnings. ``configure`` gives the ``django_jobs`` logger a stderr handler of
its own when the project configured neither it nor the root logger, and leaves a configured
project alone. Log lines carry their context as ``key=value``; the JSON format turns those
pairs into keys of one JSON object per line, for log shippers.
"""

import json
import logging
import re
import sys
from datetime import UTC, datetime

LOGGER = "django_jobs"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

#: One ``key=value`` pair of a message: a value is a call's repr (``error=Timeout('a b')``), a
#: quoted string, or a run of characters up to a space (a trailing comma or semicolon is prose).
_PAIR = re.compile(
    r"(?:^|(?<=\s))(?P<key>[a-z_][a-z0-9_]*)="
    r"(?P<value>[\w.]+\((?:[^()]|\([^()]*\))*\)|'[^']*'|\"[^\"]*\"|\S+)"
)
_INTEGER = re.compile(r"-?\d{1,18}")


def job_fields(job) -> str:
    """``job_id=… task=… queue=… attempt=…`` of a job row: every line about a job has them."""
    return f"job_id={job.pk} task={job.task_path} queue={job.queue_name} attempt={job.attempts}"


def pairs(message: str) -> dict:
    """The ``key=value`` pairs of a log message (whole numbers as ints)."""
    found = {}
    for match in _PAIR.finditer(message):
        value = match["value"].rstrip(",;")
        found[match["key"]] = int(value) if _INTEGER.fullmatch(value) else value
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and its key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        entry.update((k, v) for k, v in pairs(message).items() if k not in entry)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def project_configured(logger: logging.Logger) -> bool:
    """Whether the project's LOGGING gives ``logger`` somewhere to write: handlers of its own,
    or of the root logger (Django's defaults configure neither)."""
    return bool(logger.handlers) or bool(logging.getLogger().handlers)


def configure(log_format: str | None = None, stream=None) -> bool:
    """Give the ``django_jobs`` logger a stderr handler unless the project configured one.

    ``log_format`` None: only where the project did not configure logging, as text. "text" or
    "json" (``--log-format``): always, replacing where the lines go (they no longer propagate
    to the project's handlers, so they are not written twice). Returns whether it attached one.
    """
    logger = logging.getLogger(LOGGER)
    if log_format is None and project_configured(logger):
        return False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.set_name("django_jobs.logs")
    for old in [h for h in logger.handlers if h.get_name() == "django_jobs.logs"]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if log_format is not None:
        logger.propagate = False
    return True


def fields(**values) -> str:
    """``key=value`` pairs, in order (None as ``-``, lists comma-separated)."""
    return " ".join(f"{key}={_text(value)}" for key, value in values.items())


def _text(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value) or "-"
    return str(value).replace(" ", "_")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("django-jobs")
    except PackageNotFoundError:
        return "unknown"


def known_tasks(task_modules) -> int | str:
    """How many tasks the worker can run (after importing the task modules), or "unknown"."""
    from django_jobs import registry

    try:
        registry.autodiscover(task_modules)
    except Exception:  # noqa: BLE001  (the worker processes report it, and stop)
        return "unknown"
    return len(registry.tasks())


def where(backend) -> dict:
    """The backend's ``key=value`` description: alias, broker, database and what it is."""
    from django.db import connections

    options = backend.jobs_options
    connection = connections[options.database]
    return {
        "version": version(),
        "backend": backend.alias,
        "broker": options.broker,
        "database": options.database,
        "vendor": connection.vendor,
        "db_name": connection.settings_dict.get("NAME"),
    }


def worker_banner(backend, queues, processes: int, threads: int, beat: bool) -> str:
    """The one line ``runworker`` writes at start."""
    return "worker starting " + fields(
        **where(backend),
        queues=list(queues) or sorted(backend.queues) or "*",
        processes=processes,
        threads=threads,
        slots=processes * threads,
        beat="yes" if beat else "no",
        tasks=known_tasks(backend.jobs_options.task_modules),
    )


def beat_banner(backend, check_interval: float) -> str:
    """The one line ``runbeat`` writes at start."""
    return "beat starting " + fields(
        **where(backend),
        check_interval=check_interval,
        tasks=known_tasks(backend.jobs_options.task_modules),
    )
