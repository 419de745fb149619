"""``manage.py runworker``: start supervised worker processes."""

import logging

from django.core.management.base import BaseCommand, CommandError

from django_jobs import logs
from django_jobs.beat.loop import Beat
from django_jobs.console.metrics import WorkerMetrics
from django_jobs.management.commands.runbeat import jobs_backend
from django_jobs.worker.process import WorkerProcess
from django_jobs.worker.supervisor import Supervisor

logger = logging.getLogger("django_jobs.runworker")


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise ValueError(value)
    return number


def seconds(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Run django-jobs worker processes."

    def add_arguments(self, parser):
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            default=[],
            help="Queue to serve (repeatable). Default: every queue of the backend.",
        )
        parser.add_argument("--processes", type=positive_int, default=1)
        parser.add_argument(
            "--concurrency", type=positive_int, default=1, help="Threads per process."
        )
        parser.add_argument("--burst", action="store_true", help="Exit 0 once nothing is ready.")
        parser.add_argument("--backend", default="default", help="TASKS alias to serve.")
        parser.add_argument(
            "--beat",
            action="store_true",
            help="Also run the beat (schedules) as one more supervised process.",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=seconds,
            default=None,
            help="Seconds running jobs get to finish on SIGTERM/SIGINT (default: the backend's).",
        )
        parser.add_argument(
            "--metrics-port",
            type=port,
            default=None,
            help="Serve Prometheus metrics of all the processes on this port (docs/metrics.md).",
        )
        parser.add_argument(
            "--metrics-addr",
            default="0.0.0.0",  # noqa: S104  (Prometheus scrapes from another host)
            help="Address the metrics port listens on (default: every interface).",
        )
        parser.add_argument(
            "--log-format",
            choices=logs.FORMATS,
            default=None,
            help="Write django_jobs lines to stderr as text or JSON (one object per line), "
            "whatever LOGGING says. Default: text to stderr unless LOGGING configures them.",
        )

    def handle(
        self,
        *args,
        queues,
        processes,
        concurrency,
        burst,
        backend,
        shutdown_timeout,
        beat,
        metrics_port,
        metrics_addr,
        log_format,
        **o,
    ):
        served = jobs_backend(backend)
        if burst and beat:
            raise CommandError("--beat cannot be combined with --burst (beat never finishes).")
        if burst and metrics_port is not None:
            raise CommandError("--metrics-port cannot be combined with --burst.")
        logs.configure(log_format)
        logger.info(logs.worker_banner(served, queues, processes, concurrency, beat))

        def child(parent_pid: int) -> int:
            return WorkerProcess(
                backend=backend,
                queues=queues,
                concurrency=concurrency,
                burst=burst,
                shutdown_timeout=shutdown_timeout,
                processes=processes,
                parent_pid=parent_pid,
            ).run()

        def run_beat(parent_pid: int) -> int:
            return Beat(backend=backend, parent_pid=parent_pid).run()

        extras = [run_beat] if beat else []
        metrics = None
        if metrics_port is not None:
            try:
                metrics = WorkerMetrics(served, metrics_port, metrics_addr)
            except (ImportError, OSError) as e:
                raise CommandError(f"--metrics-port {metrics_port}: {e}") from e
            extras.append(metrics.serve)
        try:
            code = Supervisor(processes, child, burst=burst, extras=extras).run()
        finally:
            if metrics:
                metrics.close()
        if code:
            raise SystemExit(code)
