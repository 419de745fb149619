"""Benchmark runs: enqueue rate, bulk enqueue rate, drain rate and enqueue-to-start latency.

Every figure comes from real worker processes (``runworker``) against the configured database.
The drain is measured three ways: from the timestamps the rows recorded (row span), and from
outside the workers, by this process counting the queue's successful rows while they run, as
the shared harness does (steady rate, and with the workers' start-up included).
"""

import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from django.db import connections, transaction
from django.db.models import Max, Min
from django.utils import timezone

from django_jobs.bench import QUEUE
from django_jobs.bench.tasks import noop
from django_jobs.jobs.inserts import insert_succeeded
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import JobStatus

#: The queue of ``--history``'s finished rows (never run).
HISTORY_QUEUE = "bench-history"

#: Seconds between this process's counts of finished jobs during a drain. The shared harness
#: polls every 0.2 s; finer polls place the first and the last finish more closely.
POLL = 0.05
#: Seconds the latency phase waits for one job to run before it gives up.
LATENCY_PATIENCE = 30.0


class BenchFailed(Exception):
    """The benchmark could not measure: the workers did not run its jobs."""


@dataclass
class BenchConfig:
    jobs: int = 10_000
    processes: int = 2
    concurrency: int = 16
    repeat: int = 3
    latency_samples: int = 200
    enqueue_jobs: int = 2_000
    history: int = 0
    backend: str = "default"


@dataclass
class Drain:
    """One drain's rates, in jobs/s."""

    #: jobs / (the last row's finished_at - the first row's started_at)
    row_span: float
    #: jobs that succeeded between the first poll that saw any and the poll that saw all,
    #: over the time between those polls (the shared harness's ``drain``)
    outside: float
    #: jobs / (worker start to the poll that saw all: start-up included; its ``drain_wall``)
    wall: float
    not_successful: int


@dataclass
class BenchResult:
    config: BenchConfig
    setup: dict = field(default_factory=dict)
    enqueue: list[float] = field(default_factory=list)
    bulk_enqueue: list[float] = field(default_factory=list)
    drains: list[Drain] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        def median(values):
            return round(statistics.median(values), 1) if values else None

        summary = {
            "config": asdict(self.config),
            "setup": self.setup,
            "enqueue_per_s": median(self.enqueue),
            "bulk_enqueue_per_s": median(self.bulk_enqueue),
        }
        for key, name in (
            ("drain", "row_span"),
            ("drain_outside", "outside"),
            ("drain_wall", "wall"),
        ):
            runs = [getattr(drain, name) for drain in self.drains]
            summary[f"{key}_per_s"] = median(runs)
            summary[f"{key}_runs"] = [round(v, 1) for v in runs]
        summary["drain_poll_s"] = POLL
        summary["not_successful"] = sum(drain.not_successful for drain in self.drains)
        summary["latency_ms"] = self.latency_ms
        return summary


class Bench:
    def __init__(self, config: BenchConfig, log=print):
        from django_jobs.tasks_api import task_backends

        self.config = config
        self.backend = task_backends[config.backend]
        self.database = self.backend.jobs_options.database
        self.task = noop.using(backend=config.backend)
        self.log = log

    @property
    def jobs(self):
        return Job.objects.using(self.database).filter(queue_name=QUEUE)

    def run(self) -> BenchResult:
        result = BenchResult(self.config, setup=self.setup())
        self.clean()
        if self.config.history:
            self.add_history(self.config.history)
        for run in range(1, self.config.repeat + 1):
            result.enqueue.append(self.measure_enqueue())
            self.clean()
            result.bulk_enqueue.append(self.measure_bulk_enqueue())
            drain = self.measure_drain()
            result.drains.append(drain)
            self.log(
                f"run {run}: enqueue {result.enqueue[-1]:,.0f}/s, bulk enqueue "
                f"{result.bulk_enqueue[-1]:,.0f}/s, drain {drain.row_span:,.0f} jobs/s (row "
                f"span), {drain.outside:,.0f} (seen from outside), {drain.wall:,.0f} (incl. "
                f"worker start), not successful {drain.not_successful}"
            )
            self.clean()
        if self.config.latency_samples:
            result.latency_ms = self.measure_latency()
            self.log(f"latency: {result.latency_ms}")
        self.clean()
        if self.config.history:
            history = Job.objects.using(self.database).filter(queue_name=HISTORY_QUEUE)
            history._raw_delete(self.database)
        return result

    # --- phases ---------------------------------------------------------------------------
    def measure_enqueue(self) -> float:
        n = self.config.enqueue_jobs
        started = time.perf_counter()
        for i in range(n):
            self.task.enqueue(i)
        return n / (time.perf_counter() - started)

    def measure_bulk_enqueue(self) -> float:
        n = self.config.jobs
        calls = [(self.task, (i,), {}) for i in range(n)]
        started = time.perf_counter()
        self.backend.enqueue_many(calls)
        return n / (time.perf_counter() - started)

    def measure_drain(self) -> Drain:
        """Start burst workers on the queued jobs; rate from the rows and from outside."""
        n = self.jobs.filter(status=JobStatus.READY).count()
        self.vacuum()
        worker = self.start_worker(burst=True)
        started = time.perf_counter()
        (first_at, first_done), (last_at, done) = self.watch_drain(worker, n)
        code = worker.wait()
        span = self.jobs.aggregate(first=Min("started_at"), last=Max("finished_at"))
        if span["first"] is None or span["last"] is None:
            raise BenchFailed(
                f"the workers finished none of the {n} jobs and exited with {code}: see their "
                "output above"
            )
        seconds = (span["last"] - span["first"]).total_seconds()
        wall = done / (last_at - started)
        # As the harness: a drain seen whole by one poll has no steady part; report the wall.
        steady = first_at < last_at and first_done < done
        return Drain(
            row_span=n / max(seconds, 1e-6),
            outside=(done - first_done) / (last_at - first_at) if steady else wall,
            wall=wall,
            not_successful=self.jobs.exclude(status=JobStatus.SUCCESSFUL).count(),
        )

    def watch_drain(self, worker, n: int) -> tuple[tuple[float, int], tuple[float, int]]:
        """Count the queue's finished jobs every ``POLL`` s until all ``n`` are, or the
        workers exit; return (time, count) of the first poll that saw any and of the last.

        Finished is counted as ``n`` minus the jobs still READY or RUNNING: those two are on
        the partial claim and lease indexes, so a poll costs the same with a million finished
        rows in the table (counting SUCCESSFUL rows walked them all, 20 times a second, and
        halved the drain it measured). ``not successful`` tells the outcomes apart.
        """
        unfinished = self.jobs.filter(status__in=(JobStatus.READY, JobStatus.RUNNING))
        first = None
        while True:
            time.sleep(POLL)
            exited = worker.poll() is not None  # before counting: the count is then final
            done = n - unfinished.count()
            now = time.perf_counter()
            if first is None and done:
                first = (now, done)
            if done >= n or exited:
                return first or (now, done), (now, done)

    def measure_latency(self) -> dict[str, float]:
        """Enqueue one job at a time into an idle worker; enqueue-to-start percentiles."""
        worker = self.start_worker(burst=False, processes=1, concurrency=1)
        try:
            self.wait_for_job(worker, self.task.enqueue(-1).id, 0.01)  # the worker is up
            samples = []
            for i in range(self.config.latency_samples):
                result = self.task.enqueue(i)
                self.wait_for_job(worker, result.id, 0.002)
                job = self.jobs.get(pk=result.id)
                samples.append((job.started_at - job.enqueued_at).total_seconds() * 1000)
                time.sleep(0.02)  # let the worker go idle again
        finally:
            worker.terminate()
            worker.wait()
        quantiles = statistics.quantiles(samples, n=100)
        return {
            "p50": round(statistics.median(samples), 2),
            "p95": round(quantiles[94], 2),
            "p99": round(quantiles[98], 2),
        }

    def wait_for_job(self, worker: subprocess.Popen, job_id: str, interval: float) -> None:
        """Wait until the job succeeded; stop with ``BenchFailed`` if the worker exited or
        the job did not run within ``LATENCY_PATIENCE`` seconds (it used to wait forever)."""
        deadline = time.monotonic() + LATENCY_PATIENCE
        done = self.jobs.filter(pk=job_id, status=JobStatus.SUCCESSFUL)
        while not done.exists():
            if worker.poll() is not None:
                raise BenchFailed(
                    f"the latency phase's worker exited with {worker.returncode}: see its "
                    "output above"
                )
            if time.monotonic() > deadline:
                status = self.jobs.filter(pk=job_id).values_list("status", flat=True).first()
                raise BenchFailed(
                    f"the latency phase's job {job_id} did not run within "
                    f"{LATENCY_PATIENCE:.0f}s (it is {status})"
                )
            time.sleep(interval)

    # --- helpers --------------------------------------------------------------------------
    def setup(self) -> dict:
        """What the figures were measured on: backend, broker, database and its server."""
        connection = connections[self.database]
        options = self.backend.jobs_options
        database = connection.settings_dict
        setup = {
            "backend": self.config.backend,
            "broker": options.broker,
            "database": self.database,
            "vendor": connection.display_name,
            "server_version": ".".join(map(str, connection.get_database_version())),
            "name": str(database["NAME"]),
            "host": ":".join(str(v) for v in (database["HOST"], database["PORT"]) if v),
            "relaxed_commits": options.relaxed_commits,
        }
        if options.broker == "redis":
            url = urlsplit(options.redis_url or "")  # host, port and db: never a password
            setup["redis"] = f"{url.hostname}:{url.port or 6379}{url.path}"
        return setup

    def start_worker(self, burst: bool, processes=None, concurrency=None) -> subprocess.Popen:
        command = [
            *_manage_command(),
            "runworker",
            "--backend",
            self.config.backend,
            "--queue",
            QUEUE,
            "--processes",
            str(processes or self.config.processes),
            "--concurrency",
            str(concurrency or self.config.concurrency),
        ]
        if burst:
            command.append("--burst")
        return subprocess.Popen(command, env={**os.environ, "JOBS_LOG_LEVEL": "WARNING"})

    def add_history(self, count: int) -> None:
        """Insert ``count`` finished jobs (another queue) so the table has a long history.

        The rows are the benchmark task's, moved to the queue ``bench-history``: they never
        run, so that queue need not be declared in the project's ``QUEUES``.
        """
        now = timezone.now()
        template = self.backend.build_job(self.task, (0,), {}, now)
        for start in range(0, count, 50_000):
            numbers = range(start, min(start + 50_000, count))
            build = self.backend.build_job
            batch = [build(self.task, (i,), {}, now, template=template) for i in numbers]
            for job in batch:
                job.queue_name = HISTORY_QUEUE
            with transaction.atomic(using=self.database):
                insert_succeeded(self.database, batch, now, numbers)
        self.vacuum()
        self.log(f"added {count:,} finished jobs of history")

    def clean(self) -> None:
        self.jobs.delete()
        store = getattr(self.backend.broker, "store", None)
        if store is not None:  # Redis: the deleted rows' ids would lie ahead of the next run's
            store.forget_queue(QUEUE)

    def vacuum(self) -> None:
        connection = connections[self.database]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM ANALYZE {Job._meta.db_table}")


def _manage_command() -> list[str]:
    script = sys.argv[0]
    if script.endswith("manage.py"):
        return [sys.executable, script]
    return [sys.executable, "-m", "django"]
