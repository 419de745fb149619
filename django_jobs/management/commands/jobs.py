"""``manage.py jobs``: operator commands (stats, retry, cancel, pause, resume, purge, …)."""

import json
from datetime import timedelta
from json import dumps

from django.core.management.base import BaseCommand, CommandError
from django.tasks import task_backends

from django_jobs import registry, services
from django_jobs.exceptions import UnknownTask


def duration(value: str) -> timedelta:
    """Parse '30d', '12h', '15m' or '45s'."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    if len(value) < 2 or value[-1] not in units or not value[:-1].isdigit():
        raise ValueError(value)
    return timedelta(**{units[value[-1]]: int(value[:-1])})


def json_list(value: str) -> list:
    parsed = json.loads(value)
    if not isinstance(parsed, list):
        raise ValueError(value)
    return parsed


def json_object(value: str) -> dict:
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(value)
    return parsed


class Command(BaseCommand):
    help = "Inspect and manage django-jobs jobs."

    def add_arguments(self, parser):
        parser.add_argument("--backend", default="default")
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("stats", help="Job counts per queue and status; live workers.")
        for name, text in (
            ("retry", "Run failed/cancelled jobs again."),
            ("cancel", "Cancel jobs; running ones are asked to stop."),
        ):
            action = sub.add_parser(name, help=text)
            action.add_argument("ids", nargs="+", metavar="JOB_ID")
        for name, text in (
            ("pause", "Stop workers claiming from a queue."),
            ("resume", "Let workers claim from a paused queue again."),
        ):
            sub.add_parser(name, help=text).add_argument("queue")
        purge = sub.add_parser("purge", help="Delete finished jobs older than --older-than.")
        purge.add_argument("--older-than", type=duration, required=True, help="e.g. 30d, 12h")
        prune = sub.add_parser("prune-workers", help="Delete Worker rows silent for a while.")
        prune.add_argument("--older-than", type=duration, default=timedelta(days=1))
        enqueue = sub.add_parser("enqueue", help="Enqueue a declared task by dotted path.")
        enqueue.add_argument("task_path")
        enqueue.add_argument(
            "--args", dest="job_args", type=json_list, default=[], help='JSON list, e.g. "[1, 2]"'
        )
        enqueue.add_argument(
            "--kwargs", dest="job_kwargs", type=json_object, default={}, help="JSON object"
        )
        enqueue.add_argument("--queue", default=None)
        enqueue.add_argument("--priority", type=int, default=None)

        bench = sub.add_parser("bench", help="Benchmark enqueue, drain and latency.")
        bench.add_argument("--jobs", type=int, default=10_000)
        bench.add_argument("--enqueue-jobs", type=int, default=2_000)
        bench.add_argument("--processes", type=int, default=2)
        bench.add_argument("--concurrency", type=int, default=16)
        bench.add_argument("--repeat", type=int, default=3)
        bench.add_argument("--latency-samples", type=int, default=200)
        bench.add_argument("--history", type=int, default=0, help="finished rows to add first")
        bench.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args, action, backend, **options):
        jobs_backend = task_backends[backend]
        database = jobs_backend.jobs_options.database
        if action == "stats":
            self.stdout.write(json.dumps(services.stats(database), indent=2))
        elif action == "retry":
            self.stdout.write(f"retried {services.retry(database, options['ids'])} job(s)")
        elif action == "cancel":
            self.stdout.write(f"cancelled {services.cancel(database, options['ids'])} job(s)")
        elif action == "pause":
            services.pause_queue(database, options["queue"])
            self.stdout.write(f"paused queue {options['queue']}")
        elif action == "resume":
            services.resume_queue(database, options["queue"])
            self.stdout.write(f"resumed queue {options['queue']}")
        elif action == "purge":
            self.stdout.write(f"deleted {services.purge(database, options['older_than'])} job(s)")
        elif action == "prune-workers":
            count = services.prune_workers(database, options["older_than"])
            self.stdout.write(f"deleted {count} worker row(s)")
        elif action == "enqueue":
            self._enqueue(jobs_backend, **options)
        elif action == "bench":
            self._bench(backend, **options)

    def _bench(self, backend, json: bool, **options):
        from django_jobs.bench.runner import Bench, BenchConfig

        fields = BenchConfig.__dataclass_fields__
        config = BenchConfig(backend=backend, **{k: v for k, v in options.items() if k in fields})
        log = self.stderr.write if json else self.stdout.write
        summary = Bench(config, log=log).run().summary()
        self.stdout.write(dumps(summary, indent=2))

    def _enqueue(self, backend, task_path, job_args, job_kwargs, queue, priority, **options):
        registry.autodiscover(backend.jobs_options.task_modules)
        try:
            task = registry.resolve(task_path)
        except UnknownTask as e:
            raise CommandError(str(e)) from e
        try:
            result = task.using(queue_name=queue, priority=priority, backend=backend.alias).enqueue(
                *job_args, **job_kwargs
            )
        except TypeError as e:  # arguments that do not fit the task's signature, or not JSON
            raise CommandError(str(e)) from e
        self.stdout.write(result.id)
