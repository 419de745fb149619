"""Benchmark runs: enqueue rate, bulk enqueue rate, drain rate and enqueue-to-start latency.

Every figure comes from real worker processes (``runworker``) against the configured database;
rates use the timestamps the jobs themselves recorded.
"""

import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from django.db import connections, transaction
from django.db.models import Max, Min
from django.utils import timezone

from django_jobs.bench import QUEUE
from django_jobs.bench.tasks import noop
from django_jobs.jobs.inserts import insert_succeeded
from django_jobs.jobs.models import Job
from django_jobs.jobs.status import JobStatus


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
class BenchResult:
    config: BenchConfig
    enqueue: list[float] = field(default_factory=list)
    bulk_enqueue: list[float] = field(default_factory=list)
    drain: list[float] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        def median(values):
            return round(statistics.median(values), 1) if values else None

        return {
            "config": asdict(self.config),
            "enqueue_per_s": median(self.enqueue),
            "bulk_enqueue_per_s": median(self.bulk_enqueue),
            "drain_per_s": median(self.drain),
            "drain_runs": [round(v, 1) for v in self.drain],
            "not_successful": sum(self.failed),
            "latency_ms": self.latency_ms,
        }


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
        result = BenchResult(self.config)
        self.clean()
        if self.config.history:
            self.add_history(self.config.history)
        for run in range(1, self.config.repeat + 1):
            result.enqueue.append(self.measure_enqueue())
            self.clean()
            result.bulk_enqueue.append(self.measure_bulk_enqueue())
            rate, failed = self.measure_drain()
            result.drain.append(rate)
            result.failed.append(failed)
            self.log(
                f"run {run}: enqueue {result.enqueue[-1]:,.0f}/s, bulk enqueue "
                f"{result.bulk_enqueue[-1]:,.0f}/s, drain {rate:,.0f} jobs/s, failed {failed}"
            )
            self.clean()
        if self.config.latency_samples:
            result.latency_ms = self.measure_latency()
            self.log(f"latency: {result.latency_ms}")
        self.clean()
        if self.config.history:
            history = Job.objects.using(self.database).filter(queue_name="bench-history")
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

    def measure_drain(self) -> tuple[float, int]:
        """Start burst workers on the queued jobs; rate from the jobs' own timestamps."""
        n = self.jobs.filter(status=JobStatus.READY).count()
        self.vacuum()
        worker = self.start_worker(burst=True)
        worker.wait()
        span = self.jobs.aggregate(first=Min("started_at"), last=Max("finished_at"))
        seconds = (span["last"] - span["first"]).total_seconds()
        failed = self.jobs.exclude(status=JobStatus.SUCCESSFUL).count()
        return n / max(seconds, 1e-6), failed

    def measure_latency(self) -> dict[str, float]:
        """Enqueue one job at a time into an idle worker; enqueue-to-start percentiles."""
        worker = self.start_worker(burst=False, processes=1, concurrency=1)
        try:
            self.wait_until_idle_worker_ready()
            samples = []
            for i in range(self.config.latency_samples):
                result = self.task.enqueue(i)
                while not self.jobs.filter(pk=result.id, status=JobStatus.SUCCESSFUL).exists():
                    time.sleep(0.002)
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

    def wait_until_idle_worker_ready(self) -> None:
        probe = self.task.enqueue(-1)
        while not self.jobs.filter(pk=probe.id, status=JobStatus.SUCCESSFUL).exists():
            time.sleep(0.01)

    # --- helpers --------------------------------------------------------------------------
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
        """Insert ``count`` finished jobs (another queue) so the table has a long history."""
        now = timezone.now()
        task = self.task.using(queue_name="bench-history")
        template = self.backend.build_job(task, (0,), {}, now)
        for start in range(0, count, 50_000):
            numbers = range(start, min(start + 50_000, count))
            build = self.backend.build_job
            batch = [build(task, (i,), {}, now, template=template) for i in numbers]
            with transaction.atomic(using=self.database):
                insert_succeeded(self.database, batch, now, numbers)
        self.vacuum()
        self.log(f"added {count:,} finished jobs of history")

    def clean(self) -> None:
        self.jobs.delete()

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
