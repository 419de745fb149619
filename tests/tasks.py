"""The one tasks module every test uses."""

import asyncio
import os
import time
from pathlib import Path

from django_jobs import task


@task()
def add(a, b):
    return a + b


@task(queue_name="other")
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
