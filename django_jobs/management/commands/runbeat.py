"""``manage.py runbeat``: enqueue scheduled jobs (safe to run on several hosts at once)."""

import logging

from django.core.management.base import BaseCommand, CommandError

from django_jobs import backend as backends
from django_jobs import logs
from django_jobs.backend import JobsBackend
from django_jobs.beat.loop import Beat
from django_jobs.tasks_api import InvalidTaskBackend

logger = logging.getLogger("django_jobs.runbeat")


def positive_seconds(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


def jobs_backend(alias: str) -> JobsBackend:
    """The JobsBackend named ``alias``, or a CommandError saying why not."""
    try:
        return backends.jobs_backend(alias)
    except InvalidTaskBackend as e:
        raise CommandError(str(e)) from e


class Command(BaseCommand):
    help = "Enqueue the jobs of due schedules. Several beats may run: each fire time fires once."

    def add_arguments(self, parser):
        parser.add_argument("--backend", default="default", help="TASKS alias to schedule for.")
        parser.add_argument(
            "--check-interval",
            type=positive_seconds,
            default=5.0,
            help="Longest sleep between looks at the schedule table (admin edits show up "
            "within it). Default 5 s.",
        )
        parser.add_argument(
            "--no-sync",
            action="store_true",
            help="Do not sync JOBS_SCHEDULES into the table at start.",
        )
        parser.add_argument(
            "--log-format",
            choices=logs.FORMATS,
            default=None,
            help="Write django_jobs lines to stderr as text or JSON (one object per line), "
            "whatever LOGGING says. Default: text to stderr unless LOGGING configures them.",
        )

    def handle(self, *args, backend, check_interval, no_sync, log_format, **options):
        scheduled = jobs_backend(backend)
        logs.configure(log_format)
        logger.info(logs.beat_banner(scheduled, check_interval))
        code = Beat(backend=backend, check_interval=check_interval, sync=not no_sync).run()
        if code:
            raise SystemExit(code)
