"""A PostgreSQL crash (immediate stop, then crash recovery) under a running worker.

Runs on a private cluster of its own (``servers.PrivateCluster``), never the shared server, so
it can run beside other tests. The WAL writer of that cluster flushes lazily (every 10 s), so a
commit that did not wait for its WAL flush is lost in the crash, as it can be on any server.
"""

import subprocess
import sys
import time

import psycopg
import pytest

from tests.conftest import ROOT, process_env, wait_for
from tests.faults import ledger
from tests.faults.harness import Figures, Fleet, record, scale
from tests.faults.servers import PrivateCluster

pytestmark = pytest.mark.faults

#: Long heartbeats (and leases that outlive crash recovery): what a commit in the crash
#: window becomes does not depend on a heartbeat's commit flushing the WAL by chance.
OPTIONS = {"broker": "database", "lease_seconds": 20, "heartbeat_interval": 5}


@pytest.fixture
def cluster():
    server = PrivateCluster({"wal_writer_delay": "'10s'"})
    yield server
    server.close()


def manage(url: str, *args: str) -> str:
    env = process_env(OPTIONS, database_url=url)
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def enqueue(url: str, path, n: int) -> list[str]:
    code = (
        "from tests.faults.tasks import counted\n"
        f"print('IDS', *(counted.enqueue({str(path)!r}).id for _ in range({n})))"
    )
    [line] = [x for x in manage(url, "shell", "-c", code).splitlines() if x.startswith("IDS ")]
    return line.split()[1:]


def statuses(url: str, ids) -> dict[str, str]:
    with psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id::text, status FROM django_jobs_job WHERE id = ANY(%s::uuid[])", [ids]
        ).fetchall()
    return dict(rows)


def test_a_postgresql_crash_never_turns_a_job_that_ran_into_a_failure(cluster, tmp_path):
    # Given a worker on a private PostgreSQL cluster, running jobs of one attempt each
    manage(cluster.url, "migrate", "--noinput", "-v", "0")
    fleet = Fleet(tmp_path, OPTIONS, database_url=cluster.url)
    path, ids, crashes = tmp_path / "ledger.jsonl", [], 0
    started = time.monotonic()
    try:
        fleet.spawn("runworker", "--concurrency", "4")
        for _ in range(scale(1, 4)):
            batch = enqueue(cluster.url, path, scale(20, 100))
            ids += batch
            wait_for(
                lambda b=batch: set(statuses(cluster.url, b).values()) == {"SUCCESSFUL"},
                timeout=60,
                message="the jobs to succeed",
            )
            # When PostgreSQL crashes right after their outcomes were committed, and recovers
            cluster.restart_after_crash()
            crashes += 1
        # Then once every job is finished (one whose outcome vanished would be RUNNING until
        # its lease ran out), every job that ran is SUCCESSFUL: none was rescued as
        # FAILED/WorkerLost because its outcome vanished in the crash
        wait_for(
            lambda: not {"READY", "RUNNING"} & set(statuses(cluster.url, ids).values()),
            timeout=OPTIONS["lease_seconds"] + 40,
            interval=0.5,
            message="every job to finish",
        )
        final = statuses(cluster.url, ids)
        ran = {e.job for e in ledger.read(path) if e.end is not None}
        assert ran == set(ids)
        failed = sorted(pk for pk in ran if final[pk] != "SUCCESSFUL")
        result = ledger.tally(ledger.read(path), set(ids) - set(failed), fleet.gone)
        record(Figures.of("postgresql crash (private cluster)", ids, crashes, result, started))
        assert failed == [], fleet.output()
        assert result.twice_while_alive == []
    finally:
        fleet.close()
