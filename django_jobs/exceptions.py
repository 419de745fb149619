"""The django-jobs exception tree."""

from datetime import timedelta

from django_jobs.tasks_api import InvalidTask


class JobsError(Exception):
    """Base class of every django-jobs error."""


class InvalidJobArguments(InvalidTask, JobsError, TypeError):
    """A job's arguments or options cannot be stored as JSON (raised at enqueue).

    Also a ``TypeError``: what Django's own backends raise for the same mistake.
    """


class InvalidTaskOptions(InvalidTask, JobsError):
    """A task option (max_attempts, timeout, retry settings…) has a bad value."""


class UnknownTask(JobsError):
    """A job row names a function that is not a declared task."""


class JobTimeout(JobsError):
    """A job ran longer than its ``timeout``."""


class WorkerLost(JobsError):
    """A job's worker stopped heartbeating before the job finished."""


class JobArgumentsError(JobsError):
    """A job row's stored args/kwargs have the wrong shape."""


class InvalidSchedule(JobsError, ValueError):
    """A schedule's cron expression, interval, time zone or task is not usable."""


class BrokerUnavailable(JobsError):
    """The broker (Redis) cannot be reached; the worker backs off and retries."""


class JobCancelled(JobsError):
    """The job was cancelled (raised inside a running task to stop it)."""


class DuplicateJob(JobsError):
    """A unique task was enqueued while a job with the same key holds it.

    ``result`` is the existing job's ``TaskResult``.
    """

    def __init__(self, result):
        super().__init__(f"a job with the same unique key exists: {result.id}")
        self.result = result


class Snooze(JobsError):
    """Raise in a task to run it again ``seconds`` from now without spending an attempt."""

    def __init__(self, seconds: "float | timedelta"):
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        super().__init__(f"snoozed for {seconds}s")
        self.seconds = max(float(seconds), 0.0)


class Discard(JobsError):
    """Raise in a task to give the job up for good: it ends CANCELLED, never retried."""

    def __init__(self, reason: str = ""):
        super().__init__(reason or "discarded")
        self.reason = reason


class LeaseLost(JobsError):
    """An atomic job could not write its success: its lease went to another attempt."""
