"""Tasks of the fault suite: each execution writes its own record (see ``ledger``)."""

import json
import os
import time
import uuid
from pathlib import Path

from django_jobs import task


def _write(path: str, entry: dict) -> None:
    # One short line per write with O_APPEND: lines from many processes never interleave.
    with Path(path).open("a") as f:
        f.write(json.dumps(entry) + "\n")


def _entry(context, event: str, run: str) -> dict:
    return {
        "event": event,
        "run": run,  # one execution's start and end share it
        "job": context.job_id,
        "attempt": context.attempt,
        "pid": os.getpid(),
        # CLOCK_MONOTONIC is one clock for every process on the host, and faketime leaves it
        # alone (FAKETIME_DONT_FAKE_MONOTONIC): records of skewed workers line up with others.
        "at": time.monotonic(),
    }


@task(takes_context=True)
def counted(context, ledger: str, seconds: float = 0.0):
    """Record the start and the end of this execution; sleep ``seconds`` in between."""
    run = uuid.uuid4().hex
    _write(ledger, _entry(context, "start", run))
    time.sleep(seconds)
    _write(ledger, _entry(context, "end", run))
    return context.attempt


@task(takes_context=True, max_attempts=3, retry_backoff=0)
def poison(context, ledger: str):
    """Record the execution, then fail: ends FAILED after exactly ``max_attempts`` runs."""
    run = uuid.uuid4().hex
    _write(ledger, _entry(context, "start", run))
    _write(ledger, _entry(context, "fail", run))
    raise RuntimeError(f"poison attempt {context.attempt}")


@task(takes_context=True, max_attempts=3, retry_backoff=0)
def fails_once(context, ledger: str):
    """Fail the first attempt (retried at once, maybe by the same process), then succeed."""
    run = uuid.uuid4().hex
    _write(ledger, _entry(context, "start", run))
    if context.attempt == 1:
        _write(ledger, _entry(context, "fail", run))
        raise RuntimeError("first attempt fails")
    _write(ledger, _entry(context, "end", run))
    return context.attempt


@task()
def beat_tick(ledger: str, name: str):
    """A schedule's run: record which fire time ran (the beat passes its schedule name)."""
    _write(ledger, {"event": "tick", "name": name, "pid": os.getpid(), "at": time.time()})
