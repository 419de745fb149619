"""Demo tasks: quick, slow, flaky, context-aware and async."""

import asyncio
import random
import time

from django_jobs import task


@task()
def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


@task()
def slow(seconds: float = 2.0) -> float:
    """Sleep for `seconds` and return it."""
    time.sleep(seconds)
    return seconds


@task(max_attempts=3)
def flaky(fail_rate: float = 0.5) -> str:
    """Fail at random with probability `fail_rate`, to show retries."""
    if random.random() < fail_rate:
        raise RuntimeError(f"flaky task failed (fail_rate={fail_rate})")
    return "ok"


@task(takes_context=True)
def report(context, steps: int = 5) -> dict:
    """Work through `steps` steps of 0.2 s and return the attempt number."""
    for _ in range(steps):
        time.sleep(0.2)
    return {"attempt": context.attempt, "steps": steps}


@task()
async def async_sleep(seconds: float = 1.0) -> str:
    """Sleep asynchronously for `seconds`."""
    await asyncio.sleep(seconds)
    return "slept"
