"""The read-only subcommands of ``manage.py jobs``: stats, list, show, health; and the guard
that keeps ``jobs bench`` off a queue other workers serve.

(A private module of the ``jobs`` command: Django takes no ``_``-prefixed module for a command.)
"""

import argparse
import json
import socket

from django.core.management.base import CommandError
from django.db import DatabaseError

from django_jobs.jobs import health, operations, selection
from django_jobs.jobs.status import JobStatus
from django_jobs.management import tables
from django_jobs.tasks_api import task_backends

ACTIONS = ("stats", "list", "show", "health")
#: Rows ``list`` prints unless told otherwise.
LIST_DEFAULT = 20


def add_parsers(sub, job_id, status, duration) -> list:
    """Add ``list``, ``show`` and ``health`` (``stats`` is the command's own) and return them."""
    listing = sub.add_parser("list", help="Jobs, newest first, as a table.")
    listing.add_argument("--status", type=status, help="only jobs in this status")
    listing.add_argument("--task", help="only jobs of this task (dotted path)")
    listing.add_argument("--queue", help="only jobs in this queue")
    listing.add_argument("--limit", type=positive, default=LIST_DEFAULT, help="rows (default 20)")
    show = sub.add_parser("show", help="One job: its fields, attempts and last traceback.")
    show.add_argument("id", type=job_id, metavar="JOB_ID", help="a job id or a unique prefix")
    probe = sub.add_parser("health", help="Exit 0 if the database answers (and workers live).")
    probe.add_argument(
        "--workers",
        type=positive_or_zero,
        default=None,
        help="at least N workers must be live (default 0; 1 with --queue or --this-host)",
    )
    probe.add_argument(
        "--max-age",
        type=duration,
        default=None,
        help="live: heartbeated within this (default: the backend's lease)",
    )
    probe.add_argument("--queue", help="count only workers serving this queue")
    probe.add_argument(
        "--this-host", action="store_true", help="count only workers on this host (a pod)"
    )
    return [listing, show, probe]


def positive(value: str) -> int:
    return _whole(value, 1)


def positive_or_zero(value: str) -> int:
    return _whole(value, 0)


def _whole(value: str, least: int) -> int:
    if not value.isdigit() or int(value) < least:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= {least}")
    return int(value)


def handle(command, action: str, backend, **options) -> None:
    """Run ``action``; a database that does not answer is one line (exit 1), no traceback."""
    run = {"stats": stats, "list": listing, "show": show, "health": probe}[action]
    try:
        run(command, backend, **options)
    except DatabaseError as e:
        raise CommandError(health.database_problem(backend.database) or str(e), returncode=1) from e


def stats(command, backend, json: bool = False, **options) -> None:
    counts = operations.stats(backend.database)
    if json:
        command.stdout.write(_json(counts))
        return
    statuses = list(JobStatus.values)
    rows = [
        (queue, *(by_status[s] for s in statuses)) for queue, by_status in counts["queues"].items()
    ]
    totals = [sum(row[i + 1] for row in rows) for i in range(len(statuses))]
    rows.append(("(all)", *totals))
    right = range(1, len(statuses) + 1)
    command.stdout.write(tables.table(("QUEUE", *statuses), rows, right=right))
    command.stdout.write(f"\nlive workers: {counts['live_workers']}")


def listing(command, backend, status, task, queue, limit: int, **options) -> None:
    jobs = selection.select(backend.database, backend.alias, (), status, task, queue)
    jobs = jobs.filter(backend=backend.alias).order_by("-enqueued_at", "-pk")
    rows = tables.job_rows(jobs[:limit])
    if not rows:
        raise CommandError("no job matches.", returncode=1)
    command.stdout.write(tables.table(tables.LIST_HEADERS, rows, right=(4,)))


def show(command, backend, id: str, **options) -> None:  # noqa: A002 (the argument's name)
    try:
        job = selection.select(backend.database, backend.alias, [id]).get()
    except selection.JobNotFound as e:
        raise CommandError(str(e), returncode=1) from e
    command.stdout.write(tables.job_details(job))


def probe(command, backend, workers: int, max_age, queue, this_host: bool, **options) -> None:
    """One line on stdout and exit 0 when healthy; one line on stderr and exit 1 when not."""
    problem = health.database_problem(backend.database)
    if problem:
        raise CommandError(f"unhealthy: {problem}", returncode=1)
    said = f"ok: database {backend.database!r} answers"
    if workers is None:
        workers = 1 if queue or this_host else 0
    if workers:
        within = max_age or backend.jobs_options.lease
        hostname = socket.gethostname() if this_host else None
        live = health.recent_workers(backend.database, within, backend.alias, queue, hostname)
        where = (f" serving queue {queue!r}" if queue else "") + (
            f" on host {hostname!r}" if hostname else ""
        )
        counted = f"{len(live)} worker(s){where} heartbeated within {within.total_seconds():g}s"
        if len(live) < workers:
            raise CommandError(f"unhealthy: {counted}, {workers} required", returncode=1)
        said += f"; {counted}"
    command.stdout.write(said)


def refuse_shared_bench_queue(alias: str, queue: str, max_age) -> None:
    """Refuse to benchmark while other live workers serve ``queue`` of backend ``alias``:
    they would run the benchmark's jobs, and its figures would be theirs."""
    backend = task_backends[alias]
    within = max_age or backend.jobs_options.lease
    workers = health.recent_workers(backend.database, within, alias, queue)
    if workers:
        names = ", ".join(f"{w.hostname}:{w.pid}" for w in workers[:5])
        raise CommandError(
            f"refusing to run the benchmark: {len(workers)} live worker(s) of backend "
            f"{alias!r} serve its queue {queue!r} ({names}; a worker without --queue serves "
            "every queue): stop them, or benchmark another backend alias (--backend).",
            returncode=1,
        )


def bench_table(summary: dict) -> str:
    """What the benchmark ran on, then its figures, one per line."""
    latency = summary.get("latency_ms") or {}
    poll = f"{summary['drain_poll_s']:g}"
    rows = [
        ("enqueue", _rate(summary["enqueue_per_s"]), "jobs/s, one at a time"),
        ("bulk enqueue", _rate(summary["bulk_enqueue_per_s"]), "jobs/s, enqueue_many"),
        _drain_row(summary, "drain (row span)", "drain", "jobs' first start to last finish"),
        _drain_row(
            summary,
            "drain (seen from outside)",
            "drain_outside",
            f"counted every {poll} s, first finish seen to all seen (harness 'drain')",
        ),
        _drain_row(
            summary,
            "drain incl. worker start",
            "drain_wall",
            "worker start to all seen done (harness 'drain_wall')",
        ),
        ("not successful", summary["not_successful"], "jobs"),
    ]
    for name in ("p50", "p95", "p99"):
        if name in latency:
            rows.append((f"latency {name}", f"{latency[name]:,.2f}", "ms, enqueue to start"))
    figures = tables.table(("MEASURE", "VALUE", "UNIT"), rows, right=(1,))
    return f"{bench_setup(summary)}\n\n{figures}"


def _drain_row(summary: dict, name: str, key: str, how: str) -> tuple:
    runs = ", ".join(f"{v:,.0f}" for v in summary[f"{key}_runs"])
    return (name, _rate(summary[f"{key}_per_s"]), f"jobs/s, {how}; median of runs: {runs}")


def bench_setup(summary: dict) -> str:
    """Two lines: the backend, broker and database measured; the settings used."""
    setup, config = summary["setup"], summary["config"]
    where = f" on {setup['host']}" if setup["host"] else ""
    broker = f"{setup['broker']} broker" + (f" ({setup['redis']})" if "redis" in setup else "")
    ran_on = (
        f"backend {setup['backend']!r}, {broker}, {setup['vendor']} {setup['server_version']} "
        f"database {setup['name']!r}{where} (alias {setup['database']!r}), "
        f"relaxed_commits={setup['relaxed_commits']}"
    )
    settings = " ".join(f"{k}={v}" for k, v in config.items() if k != "backend")
    return f"{ran_on}\n{settings}"


def _rate(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _json(value) -> str:
    return json.dumps(value, indent=2)
