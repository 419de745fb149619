"""``manage.py jobs``: operator commands (stats, list, show, health, retry, cancel, pause,
resume, purge, prune, …).

Exit status: 0 done; 1 nothing to act on (an id or queue not found, no job matches, a
confirmation declined), or ``health`` found a problem, or ``bench`` found workers on its queue;
2 bad arguments (a malformed id, duration or priority; a destructive command without --yes
off a terminal). Errors are one line on stderr, never a traceback.
"""

import argparse
import json
import sys
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_jobs import backend as backends
from django_jobs import registry
from django_jobs.exceptions import JobsError, UnknownTask
from django_jobs.jobs import operations, retention, selection
from django_jobs.jobs.status import JobStatus
from django_jobs.management import progress
from django_jobs.management.commands import _inspect
from django_jobs.tasks_api import (
    DEFAULT_TASK_BACKEND_ALIAS,
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    InvalidTask,
    InvalidTaskBackend,
    task_backends,
)

#: Ids listed by --dry-run before "… and N more".
LIST_LIMIT = 20


def duration(value: str) -> timedelta:
    """Parse '30d', '12h', '15m' or '45s'."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    if len(value) < 2 or value[-1] not in units or not value[:-1].isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration: use e.g. 30d, 12h, 15m")
    return timedelta(**{units[value[-1]]: int(value[:-1])})


def json_list(value: str) -> list:
    parsed = _json(value)
    if not isinstance(parsed, list):
        raise argparse.ArgumentTypeError(f"{value!r} is not a JSON list, e.g. '[1, 2]'")
    return parsed


def json_object(value: str) -> dict:
    parsed = _json(value)
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"{value!r} is not a JSON object, e.g. '{{\"a\": 1}}'")
    return parsed


def _json(value: str):
    try:
        return json.loads(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r} is not JSON: {e}") from e


def priority(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not TASK_MIN_PRIORITY <= number <= TASK_MAX_PRIORITY:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a priority: use a whole number from {TASK_MIN_PRIORITY} "
            f"to {TASK_MAX_PRIORITY}"
        )
    return number


def job_id(value: str) -> str:
    try:
        return selection.id_prefix(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def status(value: str) -> str:
    if value.upper() not in JobStatus.values:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a status: use one of {', '.join(JobStatus.values)}"
        )
    return value.upper()


class OneLineParser(CommandParser):
    """Report a bad argument in one line (exit 2), without the usage block."""

    def error(self, message):
        if self.called_from_command_line:
            self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
        raise CommandError(f"Error: {message}", returncode=2)


def bad_arguments(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def not_found(message: str) -> CommandError:
    return CommandError(message, returncode=1)


class Command(BaseCommand):
    help = "Inspect and manage django-jobs jobs."

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = OneLineParser  # Django builds a CommandParser; keep it, one-line errors
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--backend", default="default")
        sub = parser.add_subparsers(dest="action", required=True, parser_class=OneLineParser)
        actions = [sub.add_parser("stats", help="Job counts per queue and status; live workers.")]
        sub.choices["stats"].add_argument("--json", action="store_true", help="print JSON")
        actions += _inspect.add_parsers(sub, job_id=job_id, status=status, duration=duration)
        changing = []  # take --dry-run
        for name, text in (
            ("retry", "Run failed/cancelled jobs again."),
            ("cancel", "Cancel jobs; running ones are asked to stop."),
        ):
            action = sub.add_parser(name, help=text)
            action.add_argument(
                "ids", nargs="*", type=job_id, metavar="JOB_ID", help="a job id or a unique prefix"
            )
            action.add_argument("--status", type=status, help="only jobs in this status")
            action.add_argument("--task", help="only jobs of this task (dotted path)")
            action.add_argument("--queue", help="only jobs in this queue")
            changing.append(action)
        for name, text in (
            ("pause", "Stop workers claiming from a queue."),
            ("resume", "Let workers claim from a paused queue again."),
        ):
            sub.add_parser(name, help=text).add_argument("queue")
            actions.append(sub.choices[name])
        purge = sub.add_parser("purge", help="Delete finished jobs older than --older-than.")
        purge.add_argument("--older-than", type=duration, required=True, help="e.g. 30d, 12h")
        retained = sub.add_parser("prune", help="Delete finished jobs past their retention.")
        retained.add_argument("--dry-run", action="store_true", help="count, change nothing")
        actions.append(retained)
        prune = sub.add_parser("prune-workers", help="Delete Worker rows silent for a while.")
        prune.add_argument("--older-than", type=duration, default=timedelta(days=1))
        changing += [purge, prune]
        for action in changing:
            action.add_argument("--dry-run", action="store_true", help="show, change nothing")
            if action is not sub.choices["retry"]:  # destructive: confirm on a terminal
                action.add_argument("--yes", action="store_true", help="do not ask (scripts)")
        actions += changing
        enqueue = sub.add_parser("enqueue", help="Enqueue a declared task by dotted path.")
        enqueue.add_argument("task_path")
        enqueue.add_argument(
            "--args", dest="job_args", type=json_list, default=[], help='JSON list, e.g. "[1, 2]"'
        )
        enqueue.add_argument(
            "--kwargs", dest="job_kwargs", type=json_object, default={}, help="JSON object"
        )
        enqueue.add_argument("--queue", default=None)
        enqueue.add_argument("--priority", type=priority, default=None)
        actions.append(enqueue)

        bench = sub.add_parser("bench", help="Benchmark enqueue, drain and latency.")
        bench.add_argument("--jobs", type=int, default=10_000)
        bench.add_argument("--enqueue-jobs", type=int, default=2_000)
        bench.add_argument("--processes", type=int, default=2)
        bench.add_argument("--concurrency", type=int, default=16)
        bench.add_argument("--repeat", type=int, default=3)
        bench.add_argument("--latency-samples", type=int, default=200)
        bench.add_argument("--history", type=int, default=0, help="finished rows to add first")
        bench.add_argument("--json", action="store_true", help="print the summary as JSON")
        bench.add_argument(
            "--max-age",
            type=duration,
            default=None,
            help="a worker is live if it heartbeated within this (default: the backend's lease)",
        )
        for action in (*actions, bench):
            # Django's global options are the main parser's; accept them after the subcommand too.
            action.add_argument(
                "--skip-checks",
                action="store_true",
                default=argparse.SUPPRESS,
                help="skip the system checks",
            )
            action.add_argument(
                "--backend", default=argparse.SUPPRESS, help="TASKS alias (default: default)"
            )

    def handle(self, *args, action, backend, **options):
        try:
            jobs_backend = backends.jobs_backend(backend)
        except InvalidTaskBackend as e:
            raise bad_arguments(str(e)) from e
        database = jobs_backend.jobs_options.database
        if action in _inspect.ACTIONS:
            _inspect.handle(self, action, jobs_backend, **options)
        elif action in ("retry", "cancel"):
            self._retry_or_cancel(action, database, backend, **options)
        elif action == "pause":
            self._check_queue(jobs_backend, options["queue"])
            operations.pause_queue(database, options["queue"])
            self.stdout.write(f"paused queue {options['queue']}")
        elif action == "resume":
            if not operations.resume_queue(database, options["queue"]):
                raise not_found(f"queue {options['queue']!r} is not paused; nothing to resume.")
            self.stdout.write(f"resumed queue {options['queue']}")
        elif action == "purge":
            jobs = operations.purgeable(database, options["older_than"])
            if self._confirm("delete", jobs, "finished job(s)", **options):
                count = progress.in_batches(jobs, operations.delete_jobs, self.stderr, "deleting")
                self.stdout.write(f"deleted {count} job(s)")
        elif action == "prune":
            self._prune(jobs_backend, options["dry_run"])
        elif action == "prune-workers":
            workers = operations.silent_workers(database, options["older_than"])
            if self._confirm("delete", workers, "worker row(s)", **options):
                count = operations.prune_workers(database, options["older_than"])
                self.stdout.write(f"deleted {count} worker row(s)")
        elif action == "enqueue":
            self._enqueue(jobs_backend, **options)
        elif action == "bench":
            self._bench(backend, **options)

    def _retry_or_cancel(self, action, database, backend, ids, status, task, queue, **options):
        if not (ids or status or task or queue):
            raise bad_arguments(f"{action}: give job ids, or select with --status/--task/--queue.")
        try:
            jobs = selection.select(database, backend, ids, status, task, queue)
        except selection.JobNotFound as e:
            raise not_found(str(e)) from e
        selected = jobs.count()
        if not selected:
            raise not_found("no job matches.")
        if action == "retry":
            if options["dry_run"]:
                return self._list("retry", jobs, "job(s)")
            count = progress.in_batches(jobs, operations.retry_jobs, self.stderr, "retrying")
        else:
            if not self._confirm("cancel", jobs, "job(s)", **options):
                return
            count = progress.in_batches(jobs, operations.cancel_jobs, self.stderr, "cancelling")
        verb = "retried" if action == "retry" else "cancelled"
        skipped = f" ({selected - count} of {selected} not in a state that allows it)"
        self.stdout.write(f"{verb} {count} job(s)" + (skipped if count < selected else ""))

    def _confirm(self, verb: str, rows, noun: str, dry_run: bool, yes: bool, **options) -> bool:
        """Whether to go ahead: --dry-run lists and stops, --yes goes, a terminal asks."""
        count = rows.count()
        if dry_run:
            self._list(verb, rows, noun)
            return False
        if yes or not count:
            return True
        if not sys.stdin.isatty():
            raise bad_arguments(
                f"refusing to {verb} {count} {noun} without confirmation (stdin is not a "
                "terminal): pass --yes, or --dry-run to list them."
            )
        answer = input(f"{verb.capitalize()} {count} {noun}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise not_found(f"nothing done: {verb} not confirmed.")
        return True

    def _list(self, verb: str, rows, noun: str) -> None:
        count = rows.count()
        self.stdout.write(f"would {verb} {count} {noun} (dry run, nothing changed)")
        for pk in rows.values_list("pk", flat=True)[:LIST_LIMIT]:
            self.stdout.write(f"  {pk}")
        if count > LIST_LIMIT:
            self.stdout.write(f"  … and {count - LIST_LIMIT} more")

    def _prune(self, backend, dry_run: bool) -> None:
        """Apply the backend's retention OPTIONS now, in batches, until nothing is left."""
        options, now = backend.jobs_options, timezone.now()
        periods, history = options.retention_periods(), options.history
        if dry_run:
            counts = retention.pending(options.database, now, periods, history)
        else:
            counts = retention.prune(options.database, now, periods, history, batches=None)
        jobs = {key: n for key, n in counts.items() if key in JobStatus.values}
        detail = " ".join(f"{key}={n}" for key, n in jobs.items()) or "every status kept forever"
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"{verb} {sum(jobs.values())} job(s) ({detail}), {counts['workflows']} workflow(s), "
            f"{counts['minutes']} counter row(s)"
            + (" (dry run, nothing changed)" if dry_run else "")
        )

    def _check_queue(self, backend, queue: str) -> None:
        if backend.queues and queue not in backend.queues:
            raise bad_arguments(
                f"{queue!r} is not a queue of TASKS[{backend.alias!r}]: use one of "
                f"{', '.join(sorted(backend.queues))}."
            )

    def _bench(self, backend: str, json: bool, max_age, **options):
        from django_jobs.bench import QUEUE

        for alias in {DEFAULT_TASK_BACKEND_ALIAS, backend}:  # noop is declared on default
            queues = task_backends[alias].queues
            if queues and QUEUE not in queues:
                raise bad_arguments(
                    f"jobs bench runs its jobs on its own queue {QUEUE!r}, which "
                    f"TASKS[{alias!r}]['QUEUES'] does not list: add {QUEUE!r} to it to run "
                    "the benchmark."
                )
        _inspect.refuse_shared_bench_queue(backend, QUEUE, max_age)
        from django_jobs.bench.runner import Bench, BenchConfig, BenchFailed

        fields = BenchConfig.__dataclass_fields__
        config = BenchConfig(backend=backend, **{k: v for k, v in options.items() if k in fields})
        log = self.stderr.write if json else self.stdout.write
        try:
            summary = Bench(config, log=log).run().summary()
        except BenchFailed as e:
            raise CommandError(f"jobs bench: {e}") from e
        self.stdout.write(json_dumps(summary) if json else _inspect.bench_table(summary))

    def _enqueue(self, backend, task_path, job_args, job_kwargs, queue, priority, **options):
        registry.autodiscover(backend.jobs_options.task_modules)
        try:
            task = registry.resolve(task_path)
            task = task.using(queue_name=queue, priority=priority, backend=backend.alias)
            result = task.enqueue(*job_args, **job_kwargs)
        except UnknownTask as e:
            raise not_found(str(e)) from e
        except (InvalidTask, JobsError, TypeError, ValueError) as e:
            raise bad_arguments(f"cannot enqueue {task_path}: {e}") from e
        self.stdout.write(result.id)


def json_dumps(value) -> str:
    return json.dumps(value, indent=2)
