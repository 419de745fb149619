"""The one tasks module every test uses."""

import asyncio
import os
import time
from pathlib import Path

from django.dispatch import receiver

from django_jobs import task
from django_jobs.tasks_api import task_finished


@task()
def add(a, b):
    return a + b


@task(queue_name="emails")
def other_queue(value):
    return value


@task()
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@task(takes_context=True)
def attempt_number(context):
    return context.attempt


@task(max_attempts=3, retry_backoff=0)
def always_fails(message="boom"):
    raise ValueError(message)


@task(max_attempts=3, retry_backoff=0, takes_context=True)
def fails_until(context, succeed_on=2):
    if context.attempt < succeed_on:
        raise RuntimeError(f"attempt {context.attempt}")
    return context.attempt


@task(max_attempts=5, retry_backoff=0, dont_retry_on=(KeyError,))
def raises_key_error():
    raise KeyError("nope")


@task()
def returns_object():
    return object()


@task()
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@task()
def record(path, value):
    """Append ``value`` to the file at ``path`` (proves how many times a job ran)."""
    with Path(path).open("a") as f:
        f.write(f"{value}\n")
    return value


@task()
def record_then_sleep(path, value, seconds):
    with Path(path).open("a") as f:
        f.write(f"{value}\n")
    time.sleep(seconds)
    return value


@task(timeout=1)
def busy_loop():
    while True:
        pass


@task(timeout=1, max_attempts=1)
def blocks_in_c(seconds=30):
    time.sleep(seconds)


@task()
async def async_add(a, b):
    await asyncio.sleep(0.01)
    return a + b


@task(timeout=0.5)
async def async_slow():
    await asyncio.sleep(30)


@task(max_attempts=2)
def kill_worker():
    os._exit(1)


@task(takes_context=True)
def progress(context, steps=3):
    for step in range(steps):
        context.report_progress(step + 1, steps)
    return steps


@task()
def rendezvous(path, value, parties, timeout=30):
    """Record ``value``, then wait until ``parties`` jobs have recorded: proves they overlap."""
    with Path(path).open("a") as f:
        f.write(f"{value}\n")
    deadline = time.monotonic() + timeout
    while len(Path(path).read_text().split()) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only some of {parties} jobs ran at the same time")
        time.sleep(0.05)
    return value


@task(takes_context=True)
def record_and_sleep_on_first_attempt(context, path, value, seconds):
    """Record ``value``; sleep only on the first attempt (a crash victim that then recovers)."""
    with Path(path).open("a") as f:
        f.write(f"{value}\n")
    if context.attempt == 1:
        time.sleep(seconds)
    return value


@task()
def waits_for_file(path, timeout=30):
    """Block until the file at ``path`` exists: a job the test lets finish when it chooses."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)
    return path


@task(max_attempts=1, takes_context=True)
def fails_first_time(context):
    """Fail on attempt 1, succeed after a retry (the console's retry demo)."""
    if context.attempt == 1:
        raise RuntimeError("the payment provider timed out")
    return {"charged": True, "attempt": context.attempt}


# --- flow control: unique jobs, cancellation, snooze/discard, atomic ------------------------
@task(unique=True)
def unique_add(a, b):
    return a + b


@task(unique_key=lambda args, kwargs: f"user:{args[0]}")
def unique_per_user(user_id, note=""):
    return user_id


@task(unique=True, on_duplicate="raise")
def unique_or_raise(value):
    return value


@task(unique_for=60)
def unique_for_a_minute(value):
    return value


@task(unique=True, unique_states=("READY",))
def unique_while_ready(value):
    return value


def _spin_until(deadline: float) -> None:
    while time.monotonic() < deadline:
        sum(range(1000))  # pure Python: an exception raised into this thread lands here


@task(takes_context=True)
def stops_when_cancelled(context, path, timeout=60):
    """Check for cancellation cooperatively, as a well-behaved long task does."""
    Path(path).write_text("started")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        context.raise_if_cancelled()
        time.sleep(0.02)
    return "never cancelled"


@task(cancel_grace=0.5)
def ignores_cancel(path, timeout=60):
    """Never look at the context: only the hard stop ends it."""
    Path(path).write_text("started")
    _spin_until(time.monotonic() + timeout)
    return "not stopped"


@task(cancel_grace=0.5)
async def async_ignores_cancel(path, timeout=60):
    Path(path).write_text("started")
    await asyncio.sleep(timeout)
    return "not stopped"


@task(takes_context=True, max_attempts=1)
def snoozes_once(context, seconds=0):
    from django_jobs import Snooze

    if context.attempt == 1:
        raise Snooze(seconds)
    return context.attempt


@task(takes_context=True, max_attempts=1)
def snoozes_then_fails(context):
    from django_jobs import Snooze

    if context.attempt == 1:
        raise Snooze(0)
    raise ValueError(f"failed on attempt {context.attempt}")


@task()
def snoozes_forever():
    from django_jobs import Snooze

    raise Snooze(3600)


@task(max_attempts=5)
def discards(reason):
    from django_jobs import Discard

    raise Discard(reason)


@task(atomic=True)
def atomic_create_group(name, fail=False):
    from django.contrib.auth.models import Group

    Group.objects.create(name=name)
    if fail:
        raise ValueError("failed after writing")
    return name


@task(atomic=True, max_attempts=2, takes_context=True)
def atomic_group_then_sleep(context, name, marker, seconds):
    """Write a row, then (first attempt only) say so and sleep: a crash before commit."""
    from django.contrib.auth.models import Group

    Group.objects.create(name=name)
    if context.attempt == 1:
        Path(marker).write_text("written")
        time.sleep(seconds)
    return name


@task(takes_context=True)
def progress_then_wait(context, path, timeout=30):
    context.report_progress(1, 2, "half way")
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)
    context.report_progress(2, 2, "done")
    return "done"


# --- flow control: limits and workflows ----------------------------------------------------
def _interval(directory, key, seconds):
    """Sleep ``seconds``, writing this run's key, start and end times to a file of its own."""
    import uuid

    start = time.time()
    time.sleep(seconds)
    Path(directory, f"{uuid.uuid4()}.run").write_text(f"{key} {start!r} {time.time()!r}")


@task(concurrency_limit=2, limit_key=lambda args, kwargs: str(args[0]))
def two_per_tenant(tenant, directory, seconds=0.2):
    _interval(directory, tenant, seconds)
    return tenant


@task(concurrency_limit=1)
def one_at_a_time(directory, seconds=0.1):
    _interval(directory, "one", seconds)


@task(rate_limit="5/s")
def five_per_second(value):
    return value


@task(rate_limit="3/m", limit_key="shared-api")
def three_per_minute(value):
    return value


@task()
def mul(a, b):
    return a * b


@task()
def total(values, extra=0):
    return sum(values) + extra


@task(max_attempts=1)
def fails(*args):
    raise ValueError("step failed")


@task()
def chord_callback(values, path):
    """Append one line per run (O_APPEND: concurrent runs never interleave)."""
    with Path(path).open("a") as f:
        f.write(f"{sum(values)}\n")
    return sum(values)


class Abort(BaseException):
    """A BaseException of the user's own, outside the Exception tree."""


def _raise_base(kind: str) -> None:
    if kind == "exit":
        exit(3)  # the site builtin: closes stdin, raises SystemExit
    raise {
        "SystemExit": SystemExit(2),
        "KeyboardInterrupt": KeyboardInterrupt(),
        "GeneratorExit": GeneratorExit(),
        "Abort": Abort("stop everything"),
    }[kind]


@task(max_attempts=3)
def raises_base(kind):
    _raise_base(kind)


@task(max_attempts=3)
async def async_raises_base(kind):
    await asyncio.sleep(0)
    _raise_base(kind)


# --- faults: leases, immediate retries, slow outcome writes ------------------------------------
def _record_attempt(path, context) -> None:
    with Path(path).open("a") as f:
        f.write(f"{context.attempt}\n")


@task(takes_context=True)
def record_attempt_then_sleep(context, path, seconds):
    """Append the attempt number to ``path`` (one line per execution), then sleep."""
    _record_attempt(path, context)
    time.sleep(seconds)
    return context.attempt


@task(max_attempts=3, retry_backoff=0, takes_context=True)
def retries_at_once_then_sleeps(context, path, wait, seconds):
    """Attempt 1 fails after ``wait`` s and is retried at once; later attempts sleep."""
    _record_attempt(path, context)
    if context.attempt == 1:
        time.sleep(wait)
        raise RuntimeError("retry me at once")
    time.sleep(seconds)
    return context.attempt


@task(max_attempts=1)
def fails_then_holds_the_writer(seconds, hold):
    """Fail after ``seconds``; writing this failure then holds the worker's outcome writer for
    ``hold`` s (see ``_hold_the_writer``): an outcome batch that takes long to be confirmed."""
    time.sleep(seconds)
    raise ValueError("failed on purpose")


@receiver(task_finished)
def _hold_the_writer(sender, task_result, **kwargs):
    if task_result.task.name == "fails_then_holds_the_writer":
        time.sleep(task_result.args[1])


@task()
def returns_nul():
    """A return value PostgreSQL's jsonb refuses (it holds no \\u0000): bad data, not bad SQL."""
    return "a\x00b"


def _current_span_ids() -> list[str]:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return [format(context.trace_id, "032x"), format(context.span_id, "016x")]


@task()
def current_span_ids():
    """The trace id and span id current while the task runs (OpenTelemetry)."""
    return _current_span_ids()


@task()
async def async_current_span_ids():
    """The same, from a coroutine on the worker's event loop."""
    return _current_span_ids()
