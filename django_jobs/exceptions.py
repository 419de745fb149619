"""The django-jobs exception tree."""

from django.tasks.exceptions import InvalidTask


class JobsError(Exception):
    """Base class of every django-jobs error."""


class InvalidJobArguments(InvalidTask, JobsError):
    """A job's arguments or options cannot be stored as JSON (raised at enqueue)."""


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
