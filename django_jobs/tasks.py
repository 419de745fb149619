"""Our ``Task`` subclass: Django's task plus retries, backoff, a timeout, unique jobs,
cancellation grace and transactional completion."""

import random
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from inspect import iscoroutinefunction

from django.utils.module_loading import import_string

from django_jobs import registry
from django_jobs.exceptions import InvalidTaskOptions
from django_jobs.jobs import limits
from django_jobs.tasks_api import Task

#: Options a job row stores (beyond Django's own fields), with their defaults.
EXTRA_OPTIONS = (
    "max_attempts",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
    "retry_on",
    "dont_retry_on",
    "timeout",
    "unique",
    "unique_key",
    "unique_states",
    "unique_for",
    "on_duplicate",
    "cancel_grace",
    "atomic",
    "concurrency_limit",
    "limit_key",
    "rate_limit",
)
#: Job statuses (``models.JobStatus``, not imported: tasks may be declared before apps load).
STATUSES = ("READY", "RUNNING", "SUCCESSFUL", "FAILED", "CANCELLED", "BLOCKED")
#: Options that only matter at enqueue time: never stored on the job row.
ENQUEUE_OPTIONS = (
    "unique", "unique_key", "unique_states", "unique_for", "on_duplicate", "limit_key",
)  # fmt: skip


def _class_paths(values, name: str) -> tuple[str, ...]:
    """Dotted paths of exception classes given as classes or paths (one, or an iterable)."""
    if not isinstance(values, list | tuple | set | frozenset):
        values = (values,)
    return tuple(_class_path(value, name) for value in values)


def _class_path(value, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, type) and issubclass(value, BaseException):
        return f"{value.__module__}.{value.__qualname__}"
    raise InvalidTaskOptions(f"{name}: {value!r} is not an exception class or its dotted path.")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTask(Task):
    """A task with django-jobs options; ``@task(...)`` keywords and ``.using(...)`` set them."""

    #: Attempts in all, the first included; None means the backend's ``default_max_attempts``.
    max_attempts: int | None = None
    #: Seconds before the first retry; doubles each attempt (exponential backoff).
    retry_backoff: float = 1.0
    #: Upper bound of the retry delay, in seconds.
    retry_backoff_max: float = 600.0
    #: Spread retries randomly over the upper half of the delay.
    retry_jitter: bool = True
    #: Retry only these exceptions (classes or dotted paths); empty means every Exception.
    retry_on: tuple = ()
    #: Never retry these exceptions.
    dont_retry_on: tuple = ()
    #: Seconds an attempt may run before it is stopped; None means no limit.
    timeout: float | None = None
    #: At most one job per key while a job holds it (see ``docs/unique-jobs.md``).
    unique: bool = False
    #: The key: ``None`` (task args + kwargs), a string, or a callable ``(args, kwargs) -> str``.
    unique_key: object = None
    #: Statuses in which a job holds its key.
    unique_states: tuple = ("READY", "RUNNING")
    #: Seconds from enqueue during which the key stays held, whatever the job's status.
    unique_for: float | None = None
    #: On a duplicate: ``"return"`` the existing job's result, or ``"raise"`` DuplicateJob.
    on_duplicate: str = "return"
    #: Seconds a running job gets to stop by itself once cancelled, before it is interrupted.
    cancel_grace: float = 10.0
    #: Commit the task's database writes and the job's success in one transaction.
    atomic: bool = False
    #: At most this many jobs with the same ``limit_key`` run at once, across all workers.
    concurrency_limit: int | None = None
    #: At most N starts per period per ``limit_key``, across all workers: "10/s", "100/m"…
    rate_limit: str | None = None
    #: The gate: a string (shared by every task naming it), a callable ``(args, kwargs) ->
    #: str`` (prefixed with the task path), or None (the task path).
    limit_key: object = None

    def __post_init__(self):
        for name in ("retry_on", "dont_retry_on"):
            object.__setattr__(self, name, _class_paths(getattr(self, name), name))
        if isinstance(self.unique_for, timedelta):
            object.__setattr__(self, "unique_for", self.unique_for.total_seconds())
        states = self.unique_states
        states = (states,) if isinstance(states, str) else states
        object.__setattr__(self, "unique_states", tuple(str(state) for state in states))
        if self.unique_key is not None or self.unique_for is not None:
            object.__setattr__(self, "unique", True)
        self._check_options()
        _check_flow_options(self)
        limits.check_options(self)
        super(JobTask, self).__post_init__()
        registry.register(self)

    def _check_options(self) -> None:
        if self.max_attempts is not None and (
            not isinstance(self.max_attempts, int) or self.max_attempts < 1
        ):
            raise InvalidTaskOptions(
                f"max_attempts must be an int >= 1, not {self.max_attempts!r}."
            )
        if self.timeout is not None and not (
            isinstance(self.timeout, int | float) and self.timeout > 0
        ):
            raise InvalidTaskOptions(f"timeout must be a positive number, not {self.timeout!r}.")
        for name in ("retry_backoff", "retry_backoff_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise InvalidTaskOptions(f"{name} must be a number >= 0, not {value!r}.")

    def using(self, *, priority=None, queue_name=None, run_after=None, backend=None, **options):
        """Return a copy with other defaults; accepts the extra options too."""
        unknown = set(options) - set(EXTRA_OPTIONS)
        if unknown:
            raise InvalidTaskOptions(f"Unknown task option(s): {', '.join(sorted(unknown))}.")
        task = super(JobTask, self).using(
            priority=priority, queue_name=queue_name, run_after=run_after, backend=backend
        )
        return replace(task, **options) if options else task

    # --- workflows ------------------------------------------------------------------------
    def s(self, *args, **kwargs):
        """A signature: this task with arguments, for ``chain``/``group``/``chord``.

        In a chain it gets the previous step's result as its first argument.
        """
        from django_jobs.workflows import Signature

        return Signature(self, args, kwargs)

    def si(self, *args, **kwargs):
        """An immutable signature: it does not receive the previous step's result."""
        from django_jobs.workflows import Signature

        return Signature(self, args, kwargs, immutable=True)

    # --- retry policy ---------------------------------------------------------------------
    def should_retry(self, exception: BaseException, attempt: int, max_attempts: int) -> bool:
        """Whether a failed attempt gets another go."""
        if attempt >= max_attempts or not isinstance(exception, Exception):
            return False
        if any(isinstance(exception, _load(path)) for path in self.dont_retry_on):
            return False
        if self.retry_on:
            return any(isinstance(exception, _load(path)) for path in self.retry_on)
        return True

    def retry_delay(self, attempt: int) -> timedelta:
        """Exponential backoff after ``attempt`` failed, capped, with optional jitter."""
        delay = min(self.retry_backoff_max, self.retry_backoff * 2 ** (attempt - 1))
        if self.retry_jitter:
            delay = delay / 2 + random.uniform(0, delay / 2)
        return timedelta(seconds=delay)

    def stored_options(self) -> dict:
        """The options that differ from their defaults, as stored on a job row."""
        defaults = {f.name: f.default for f in fields(JobTask) if f.name in EXTRA_OPTIONS}
        stored = {}
        for name in EXTRA_OPTIONS:
            if name in ("max_attempts", "timeout") or name in ENQUEUE_OPTIONS:
                continue  # columns of their own, or used at enqueue only
            value = getattr(self, name)
            if value != defaults[name]:
                stored[name] = list(value) if isinstance(value, tuple) else value
        return stored


def _check_flow_options(task: JobTask) -> None:
    if not (
        task.unique_key is None or isinstance(task.unique_key, str) or callable(task.unique_key)
    ):
        raise InvalidTaskOptions("unique_key must be a string or a callable (args, kwargs) -> str.")
    unknown = set(task.unique_states) - set(STATUSES)
    if unknown or not task.unique_states:
        raise InvalidTaskOptions(f"unique_states must be job statuses, not {task.unique_states!r}.")
    if task.unique_for is not None and not (
        isinstance(task.unique_for, int | float) and task.unique_for > 0
    ):
        raise InvalidTaskOptions(f"unique_for must be positive seconds, not {task.unique_for!r}.")
    if task.on_duplicate not in ("return", "raise"):
        raise InvalidTaskOptions(
            f'on_duplicate must be "return" or "raise", not {task.on_duplicate!r}.'
        )
    if not isinstance(task.cancel_grace, int | float) or task.cancel_grace < 0:
        raise InvalidTaskOptions(f"cancel_grace must be seconds >= 0, not {task.cancel_grace!r}.")
    if task.atomic and iscoroutinefunction(task.func):
        raise InvalidTaskOptions(
            "atomic=True needs a sync task: a coroutine runs off the job's thread."
        )


def _load(path: str) -> type:
    try:
        return import_string(path)
    except ImportError:
        return type(None)  # an exception class that no longer exists matches nothing
