"""Count executions from the records the fault suite's tasks write (one JSON line each).

A job that ran again is classed by what became of the process that ran it before:
**twice while alive** when that process was still alive (not killed, not exited) when the job
started again, which the lease is there to prevent; **twice after expiry** when it was gone
(killed, or exited), which at-least-once allows.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Execution:
    job: str
    attempt: int
    pid: int
    start: float
    end: float | None = None
    #: The task raised on purpose (a retry follows: not a second run).
    failed: bool = False


@dataclass
class Tally:
    executions: int = 0
    lost: list = field(default_factory=list)
    twice_while_alive: list = field(default_factory=list)
    twice_after_expiry: list = field(default_factory=list)


def read(path: Path) -> list[Execution]:
    """The executions recorded in ``path`` (a line cut short by a SIGKILL is skipped)."""
    started: dict[tuple, Execution] = {}
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        key = entry["run"]
        if entry["event"] == "start":
            started[key] = Execution(entry["job"], entry["attempt"], entry["pid"], entry["at"])
        elif entry["event"] in ("end", "fail") and key in started:
            started[key].end = entry["at"]
            started[key].failed = entry["event"] == "fail"
    return sorted(started.values(), key=lambda e: e.start)


def tally(executions: list[Execution], done: set, gone: dict[int, float]) -> Tally:
    """Class the executions; ``done``: the jobs the database says ended as expected;
    ``gone``: pid -> when that process was killed or seen exited."""
    result = Tally(executions=len(executions))
    by_job: dict[str, list[Execution]] = {}
    for execution in executions:
        by_job.setdefault(execution.job, []).append(execution)
    for job in done:
        by_job.setdefault(str(job), [])
    for job, runs in by_job.items():
        if str(job) not in done:
            result.lost.append(job)
        for before, again in zip(runs, runs[1:], strict=False):
            if before.failed:
                continue  # the task raised: the next attempt is a retry, not a second run
            if gone.get(before.pid, math.inf) <= again.start:
                result.twice_after_expiry.append(job)
            else:
                result.twice_while_alive.append(job)
    return result
