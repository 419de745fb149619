"""JobTask options: declaring them, overriding them per call, validating them, retry policy."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

import django_jobs
from django_jobs import tasks_api
from django_jobs.exceptions import InvalidTaskOptions
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks import JobTask
from django_jobs.tasks_api import (
    TASK_FORWARDS_OPTIONS,
    InvalidTask,
    TaskResultStatus,
    task_backends,
)
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from tests import tasks


@django_jobs.task(
    priority=5,
    queue_name="reports",
    max_attempts=4,
    timeout=30,
    retry_backoff=2,
    retry_backoff_max=10,
    retry_jitter=False,
    retry_on=(LookupError, "builtins.ArithmeticError"),
    dont_retry_on=("builtins.KeyError",),
)
def with_options(x):
    return x


# Django 6.0's @task takes no extra keywords; 6.1's and the 5.2 backport's pass them on.
DJANGO_FORWARDS_OPTIONS = TASK_FORWARDS_OPTIONS


def _declared_with_django_task():
    return None


if DJANGO_FORWARDS_OPTIONS:
    declared_with_django_task = tasks_api.task(max_attempts=2, timeout=5)(
        _declared_with_django_task
    )


@django_jobs.task
def bare():
    return None


def plain_function():
    """A module-level function that is not a task."""


def call_task(task, args, kwargs):
    return task.func(*args, **kwargs)


# --- declaring options ------------------------------------------------------------------------
def test_django_jobs_task_sets_every_option():
    # Given a task declared with django_jobs.task and all our options
    # Then the JobTask carries them, dotted paths for the exception classes
    assert isinstance(with_options, JobTask)
    assert with_options.priority == 5
    assert with_options.queue_name == "reports"
    assert with_options.max_attempts == 4
    assert with_options.timeout == 30
    assert with_options.retry_backoff == 2
    assert with_options.retry_backoff_max == 10
    assert with_options.retry_jitter is False
    assert with_options.retry_on == ("builtins.LookupError", "builtins.ArithmeticError")
    assert with_options.dont_retry_on == ("builtins.KeyError",)


def test_django_jobs_task_works_without_parentheses_and_has_defaults():
    # Given a task declared with a bare @django_jobs.task
    # Then it is a JobTask with the defaults
    assert isinstance(bare, JobTask)
    assert bare.max_attempts is None
    assert bare.timeout is None
    assert bare.retry_backoff == 1.0
    assert bare.retry_jitter is True
    assert bare.stored_options() == {}


@pytest.mark.skipif(not DJANGO_FORWARDS_OPTIONS, reason="Django 6.0's @task drops extras")
def test_django_task_decorator_passes_options_to_our_task_class():
    # Given a task declared with Django 6.1's own @task and extra keywords
    # Then the backend's task_class received them
    assert isinstance(declared_with_django_task, JobTask)
    assert declared_with_django_task.max_attempts == 2
    assert declared_with_django_task.timeout == 5


@pytest.mark.skipif(DJANGO_FORWARDS_OPTIONS, reason="only Django 6.0 refuses the extras")
def test_on_django_60_extra_options_need_django_jobs_task():
    # Given Django 6.0, whose @task takes no extra keywords
    # Then it refuses them, which is why django_jobs.task exists
    with pytest.raises(TypeError):
        tasks_api.task(max_attempts=2)(_declared_with_django_task)


@pytest.mark.django_db
def test_declared_options_land_on_the_job_row():
    # When a task with options is enqueued
    result = with_options.enqueue(1)
    # Then the row carries them: columns for max_attempts/timeout, the rest in options
    job = Job.objects.get(pk=result.id)
    assert (job.priority, job.queue_name) == (5, "reports")
    assert job.max_attempts == 4
    assert job.timeout == 30
    assert job.options == {
        "retry_backoff": 2,
        "retry_backoff_max": 10,
        "retry_jitter": False,
        "retry_on": ["builtins.LookupError", "builtins.ArithmeticError"],
        "dont_retry_on": ["builtins.KeyError"],
    }


def test_stored_options_hold_only_non_defaults():
    # Given tasks with and without extra options
    # Then only values that differ from the defaults are stored (columns excluded)
    assert tasks.add.stored_options() == {}
    assert tasks.add.using(max_attempts=9, timeout=3).stored_options() == {}
    assert tasks.add.using(retry_backoff=1.0, retry_jitter=True).stored_options() == {}
    assert tasks.add.using(retry_backoff=0).stored_options() == {"retry_backoff": 0}
    assert tasks.raises_key_error.stored_options() == {
        "retry_backoff": 0,
        "dont_retry_on": ["builtins.KeyError"],
    }


# --- using() ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_using_overrides_options_on_the_row():
    # When a call overrides max_attempts and timeout
    result = tasks.add.using(max_attempts=5, timeout=2).enqueue(1, 2)
    # Then the row stores the overrides
    job = Job.objects.get(pk=result.id)
    assert job.max_attempts == 5
    assert job.timeout == 2
    assert job.options == {}


@pytest.mark.django_db
def test_using_keeps_declared_options_it_does_not_override():
    # When only priority is overridden on a task with options
    task = with_options.using(priority=-3, retry_backoff_max=99)
    result = task.enqueue(1)
    # Then the other declared options stay, the new ones apply, the original is unchanged
    job = Job.objects.get(pk=result.id)
    assert job.priority == -3
    assert job.max_attempts == 4
    assert job.options["retry_backoff_max"] == 99
    assert job.options["retry_on"] == ["builtins.LookupError", "builtins.ArithmeticError"]
    assert with_options.retry_backoff_max == 10
    assert with_options.priority == 5


@pytest.mark.django_db
def test_using_run_after_stores_it():
    # Given an aware time in the future
    later = timezone.now() + timedelta(hours=1)
    # When the call is deferred to it
    result = tasks.add.using(run_after=later).enqueue(1, 2)
    # Then the row waits until then
    assert Job.objects.get(pk=result.id).run_after == later


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"max_attempts": 1.5},
        {"max_attempts": "3"},
        {"timeout": -1},
        {"timeout": 0},
        {"timeout": "10"},
        {"retry_backoff": "x"},
        {"retry_backoff": -1},
        {"retry_backoff_max": None},
        {"retry_on": (42,)},
        {"dont_retry_on": (object,)},
        {"colour": "red"},
    ],
    ids=lambda options: ",".join(f"{k}={v!r}" for k, v in options.items()),
)
def test_using_rejects_invalid_options(options):
    # When a call gives an option a bad value, or an unknown option
    # Then an InvalidTask subclass names the problem
    with pytest.raises(InvalidTaskOptions) as excinfo:
        tasks.add.using(**options)
    assert isinstance(excinfo.value, InvalidTask)
    assert next(iter(options)) in str(excinfo.value)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (ValueError, ("builtins.ValueError",)),
        ("builtins.ValueError", ("builtins.ValueError",)),
        ([ValueError, "myapp.errors.Flaky"], ("builtins.ValueError", "myapp.errors.Flaky")),
    ],
    ids=["class", "path", "list"],
)
def test_retry_on_accepts_a_single_class_or_path(given, stored):
    # When retry_on / dont_retry_on are given one class or path instead of a tuple
    task = tasks.add.using(retry_on=given, dont_retry_on=given)
    # Then they are stored as a tuple of dotted paths, not split into characters
    assert task.retry_on == stored
    assert task.dont_retry_on == stored


def test_retry_on_rejects_a_non_class_scalar():
    # When retry_on is a value that is neither a class nor a path
    # Then the error names the option
    with pytest.raises(InvalidTaskOptions, match="retry_on: 42"):
        tasks.add.using(retry_on=42)


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"timeout": -1}, {"retry_backoff": "x"}, {"colour": "red"}],
    ids=["max_attempts", "timeout", "retry_backoff", "unknown"],
)
def test_decorator_rejects_invalid_options(options):
    # When a task is declared with a bad option
    # Then the declaration fails with InvalidTask (an unknown keyword with TypeError)
    with pytest.raises((InvalidTask, TypeError)):
        django_jobs.task(**options)(plain_function)


def test_invalid_options_are_not_registered():
    # Given a declaration that failed
    from django_jobs import registry
    from django_jobs.exceptions import UnknownTask

    with pytest.raises(InvalidTask):
        django_jobs.task(max_attempts=0)(plain_function)
    # Then the function did not become a runnable task
    with pytest.raises(UnknownTask):
        registry.resolve("tests.test_tasks.plain_function")


# --- Django's validation ----------------------------------------------------------------------
@pytest.mark.parametrize("priority", [101, -101, 1.5])
def test_priority_out_of_range_is_rejected(priority):
    # When a priority outside Django's range is asked for
    # Then InvalidTask is raised
    with pytest.raises(InvalidTask, match="priority"):
        tasks.add.using(priority=priority)


def test_priority_at_the_bounds_is_accepted():
    # Given Django's priority bounds
    # Then both ends are valid
    assert tasks.add.using(priority=100).priority == 100
    assert tasks.add.using(priority=-100).priority == -100


def test_non_module_level_function_is_rejected():
    # Given a function defined inside another function
    def local():
        return None

    # When it is declared a task
    # Then Django's validation refuses it
    with pytest.raises(InvalidTask, match="module level"):
        django_jobs.task()(local)


def test_takes_context_requires_a_context_argument():
    # When a task says it takes context but its first argument is not "context"
    # Then it is refused
    with pytest.raises(InvalidTask, match="context"):
        django_jobs.task(takes_context=True)(plain_function)


def test_naive_run_after_is_rejected():
    # When run_after is a naive datetime
    # Then InvalidTask is raised
    with pytest.raises(InvalidTask, match="aware"):
        tasks.add.using(run_after=datetime(2030, 1, 1))


def test_django_jobs_task_rejects_run_after():
    # When run_after is given to the decorator
    # Then it is refused: run_after belongs to .using()
    with pytest.raises(TypeError, match="run_after"):
        django_jobs.task(run_after=timezone.now())(plain_function)


# --- queues -----------------------------------------------------------------------------------
@pytest.fixture
def restricted_queues(settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": ["a", "b"],
            "OPTIONS": {},
        }
    }
    return task_backends["default"]


@pytest.mark.django_db
def test_queue_in_the_backend_queues_is_accepted(restricted_queues):
    # When a task is enqueued on an allowed queue
    result = tasks.add.using(queue_name="b").enqueue(1, 2)
    # Then the row is written on it
    assert Job.objects.get(pk=result.id).queue_name == "b"


@pytest.mark.django_db
def test_queue_outside_the_backend_queues_is_rejected(restricted_queues):
    # When a task is sent to a queue the backend does not list
    # Then InvalidTask names the queue, at using() or at enqueue, and nothing is written
    with pytest.raises(InvalidTask, match="'c'"):
        tasks.add.using(queue_name="c")
    with pytest.raises(InvalidTask, match="'default'"):
        tasks.add.enqueue(1, 2)
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_empty_queues_allow_any_queue(settings):
    # Given the default backend with QUEUES = []
    settings.TASKS = {
        "default": {"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": [], "OPTIONS": {}}
    }
    # When a task is enqueued on an arbitrary queue
    result = tasks.add.using(queue_name="anything-goes").enqueue(1, 2)
    # Then it is accepted
    assert Job.objects.get(pk=result.id).queue_name == "anything-goes"


# --- retry policy -----------------------------------------------------------------------------
def test_retry_delay_grows_exponentially_up_to_the_cap():
    # Given a task with backoff 2s capped at 10s and no jitter
    # Then the delay doubles per failed attempt and stops at the cap
    delays = [with_options.retry_delay(attempt).total_seconds() for attempt in range(1, 7)]
    assert delays == [2, 4, 8, 10, 10, 10]


def test_retry_delay_is_zero_with_zero_backoff():
    # Given a task with retry_backoff=0
    # Then retries are immediate
    assert tasks.always_fails.retry_delay(3) == timedelta(0)


def test_retry_delay_with_jitter_stays_within_the_upper_half():
    # Given the default jitter and a 1s backoff (delay 8s at attempt 4)
    task = tasks.add.using(retry_backoff=1, retry_backoff_max=600)
    # When many delays are drawn
    delays = {task.retry_delay(4).total_seconds() for _ in range(300)}
    # Then each lies in [delay/2, delay] and they are actually spread
    assert all(4 <= d <= 8 for d in delays)
    assert len(delays) > 1


def test_retry_delay_with_jitter_respects_the_cap():
    # Given a task capped at 3s
    task = tasks.add.using(retry_backoff=1, retry_backoff_max=3)
    # Then even late attempts stay within [cap/2, cap]
    assert all(1.5 <= task.retry_delay(20).total_seconds() <= 3 for _ in range(100))


def test_should_retry_honours_retry_on_and_dont_retry_on():
    # Given retry_on=(LookupError, "builtins.ArithmeticError"), dont_retry_on=("builtins.KeyError",)
    task = with_options
    # Then listed classes and their subclasses retry, others and excluded ones do not
    assert task.should_retry(IndexError(), attempt=1, max_attempts=4)
    assert task.should_retry(ZeroDivisionError(), attempt=1, max_attempts=4)
    assert not task.should_retry(KeyError(), attempt=1, max_attempts=4)
    assert not task.should_retry(ValueError(), attempt=1, max_attempts=4)


def test_should_retry_stops_at_max_attempts():
    # Given a task retrying every exception
    task = tasks.add
    # Then it retries until the attempt budget is spent
    assert task.should_retry(ValueError(), attempt=1, max_attempts=3)
    assert task.should_retry(ValueError(), attempt=2, max_attempts=3)
    assert not task.should_retry(ValueError(), attempt=3, max_attempts=3)
    assert not task.should_retry(ValueError(), attempt=1, max_attempts=1)


def test_should_retry_never_retries_base_exceptions():
    # Given an exception that is not an Exception (e.g. KeyboardInterrupt)
    # Then it is never retried
    assert not tasks.add.should_retry(KeyboardInterrupt(), attempt=1, max_attempts=5)


def test_should_retry_with_dont_retry_on_only():
    # Given a task that excludes KeyError by class
    task = tasks.raises_key_error
    # Then KeyError is final while other errors retry
    assert not task.should_retry(KeyError("k"), attempt=1, max_attempts=5)
    assert task.should_retry(ValueError(), attempt=1, max_attempts=5)


def test_should_retry_ignores_exception_paths_that_do_not_import():
    # Given retry_on naming a class that does not exist
    task = tasks.add.using(retry_on=("no.such.module.Error",))
    # Then nothing matches it, so nothing is retried
    assert not task.should_retry(ValueError(), attempt=1, max_attempts=5)


def test_stored_options_survive_using_on_the_worker_side():
    # Given the options a row stores
    stored = with_options.stored_options()
    # When a worker reapplies them to the registered task
    rebuilt = bare.using(**stored)
    # Then the retry policy is the same
    assert rebuilt.retry_on == with_options.retry_on
    assert rebuilt.dont_retry_on == with_options.dont_retry_on
    assert rebuilt.retry_delay(3) == with_options.retry_delay(3)


# --- takes_context ----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_takes_context_task_receives_its_attempt_number():
    # Given a context-taking task declared with django_jobs.task, enqueued and claimed
    backend = task_backends["default"]
    result = tasks.attempt_number.enqueue()
    now = timezone.now()
    Job.objects.filter(pk=result.id).claim("worker-ctx", now, timedelta(seconds=60))
    job = Job.objects.get(pk=result.id)
    # When the attempt runs
    attempt = run_attempt(Attempt(job, "worker-ctx", backend), call_task)
    # Then the function got a context saying attempt 1, and that is the result
    assert attempt.outcome == TaskResultStatus.SUCCESSFUL
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESSFUL
    assert job.return_value == 1
