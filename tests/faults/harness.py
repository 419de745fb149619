"""Run real workers under attack and count what happened to every job.

``Fleet`` starts ``manage.py runworker``/``runbeat`` processes (optionally with a shifted clock),
watches which of their processes are alive, kills them on request, and remembers when each
process went away: that is what tells a second run "while alive" from one "after expiry".
"""

import json
import os
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from django_jobs.jobs.status import FINISHED
from django_jobs.models import Job
from tests.conftest import ManageProcess, process_env
from tests.faults import ledger

#: Short leases, so true expiries and rescues happen within a scenario.
FAULT_OPTIONS = {
    "task_modules": ["tests.tasks", "tests.faults.tasks"],
    "lease_seconds": 3,
    "heartbeat_interval": 0.5,
    "poll_interval": 0.2,
}

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
SKEW = Path(__file__).resolve().parent / "skew"


def scale(short, long):
    """``short`` unless FAULTS_SCALE=long (the published figures come from the long runs)."""
    return long if os.environ.get("FAULTS_SCALE", "short") == "long" else short


def skewed_env(offset: str) -> dict:
    """Environment that shifts a process's wall clock by ``offset`` (e.g. "-45s") with
    libfaketime; its monotonic clock stays the host's (see ``skew/sitecustomize.py``)."""
    if not os.path.exists(LIBFAKETIME) or not shutil.which("faketime"):
        if os.environ.get("CI"):
            pytest.fail("libfaketime is missing (apt-get install faketime)")
        pytest.skip("libfaketime is missing (apt-get install faketime)")
    return {
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SKEW), os.environ.get("PYTHONPATH")])),
    }


class Fleet:
    """Real worker/beat processes of one scenario; every one is killed at ``close``."""

    def __init__(self, tmp_path: Path, options: dict | None = None, database_url: str = ""):
        self.tmp_path = tmp_path
        self.options = {**FAULT_OPTIONS, **(options or {})}
        self.database_url = database_url
        self.handles: list[ManageProcess] = []
        #: pid -> monotonic time it was killed or first seen gone.
        self.gone: dict[int, float] = {}
        self._seen: set[int] = set()
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def spawn(self, *args: str, options: dict | None = None, env: dict | None = None):
        """Start ``manage.py <args>`` (e.g. "runworker", "--concurrency", "4")."""
        environ = process_env({**self.options, **(options or {})}, self.database_url)
        environ.update(env or {})
        log = self.tmp_path / f"{args[0]}-{len(self.handles)}.log"
        handle = ManageProcess(list(args), environ, log)
        self.handles.append(handle)
        return handle

    def pids(self, handle: ManageProcess) -> list[int]:
        return [handle.pid, *handle.children()]

    def kill(self, handle: ManageProcess) -> int:
        """SIGKILL the supervisor and its processes; return how many processes were killed."""
        pids = self.pids(handle)
        now = time.monotonic()
        for pid in pids:
            self.gone.setdefault(pid, now)
        handle.kill_all()
        return len(pids)

    def _watch(self) -> None:
        # A process is followed from the first time it is seen until /proc says it is gone:
        # a worker can outlive its supervisor (then it is no longer anyone's listed child).
        while not self._closed.wait(0.1):
            for handle in list(self.handles):
                if handle.proc.poll() is None:
                    self._seen.update(self.pids(handle))
            now = time.monotonic()
            for pid in self._seen - set(self.gone):
                if not _alive(pid):
                    self.gone[pid] = now

    def output(self) -> str:
        return "\n".join(f"--- {h.log_path.name}\n{h.output()[-3000:]}" for h in self.handles)

    def close(self) -> None:
        for handle in self.handles:
            handle.stop()
        self._closed.set()
        self._watcher.join(2)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def drain(job_ids, timeout: float, every: float = 0.5, inject=None, database: str = "default"):
    """Wait until every job is finished; call ``inject()`` every ``every`` s meanwhile.
    Return the ids still unfinished at ``timeout``."""
    deadline = time.monotonic() + timeout
    ids = [str(pk) for pk in job_ids]
    left = ids
    while time.monotonic() < deadline:
        done = Job.objects.using(database).filter(pk__in=left, status__in=FINISHED)
        finished = {str(pk) for pk in done.values_list("pk", flat=True)}
        left = [pk for pk in left if pk not in finished]
        if not left:
            return []
        if inject is not None:
            inject()
        time.sleep(every)
    return left


@dataclass
class Figures:
    """One line of the fault suite's table."""

    scenario: str
    jobs: int
    faults: int
    lost: int
    twice_while_alive: int
    twice_after_expiry: int
    wall_seconds: float

    @classmethod
    def of(cls, scenario: str, ids, faults: int, result: ledger.Tally, started: float):
        return cls(
            scenario,
            len(ids),
            faults,
            len(result.lost),
            len(result.twice_while_alive),
            len(result.twice_after_expiry),
            round(time.monotonic() - started, 1),
        )


def record(figures: Figures) -> Figures:
    """Append the figures to FAULTS_REPORT (``scripts/faults.sh`` prints them as a table)."""
    report = os.environ.get("FAULTS_REPORT")
    if report:
        with Path(report).open("a") as f:
            f.write(json.dumps(asdict(figures)) + "\n")
    print(figures)  # noqa: T201 (shown with -s, and in the log of a failed run)
    return figures


def count(scenario: str, path: Path, expected: dict, fleet: Fleet, faults: int, started: float):
    """Tally the ledger against ``expected`` (job id -> the status it must end in); record
    the figures; return them and the tally."""
    rows = Job.objects.filter(pk__in=list(expected)).values_list("pk", "status")
    done = {str(pk) for pk, status in rows if status == expected[str(pk)]}
    result = ledger.tally(ledger.read(path), done, fleet.gone)
    return record(Figures.of(scenario, expected, faults, result, started)), result


def stop_gracefully(fleet: Fleet, handle: ManageProcess, timeout: float = 60) -> int:
    handle.signal(signal.SIGTERM)
    return handle.wait(timeout)
