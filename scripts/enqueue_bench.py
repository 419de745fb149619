"""Enqueue micro-benchmark: one by one in autocommit, and ``enqueue_many`` (docs/performance.md).

    DEBUG=false DATABASE_URL=postgres://postgres@127.0.0.1:5432/enqbench \\
      JOBS_QUEUES='["default","emails","reports","bench"]' \\
      .venv/bin/python scripts/enqueue_bench.py [ALIAS]     # ALIAS: default, or redis

N1 (5,000) jobs one by one and NB (10,000) in one ``enqueue_many``, REPS (3) times; prints each
rate and the client CPU time per job. Its jobs go to the queue ``bench`` and are deleted after.
"""

import os
import sys
import time
from pathlib import Path


def main(alias: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    import django

    django.setup()
    from django_jobs.bench.tasks import noop
    from django_jobs.jobs.models import Job
    from django_jobs.tasks_api import task_backends

    one_by_one, bulk = int(os.environ.get("N1", 5000)), int(os.environ.get("NB", 10000))
    task, backend = noop.using(backend=alias), task_backends[alias]
    for i in range(200):  # warm up: connection, task validation, scripts
        task.enqueue(i)
    for _ in range(int(os.environ.get("REPS", 3))):
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(one_by_one):
            task.enqueue(i)
        report("one by one", one_by_one, started, cpu)
        calls = [(task, (i,), {}) for i in range(bulk)]
        started, cpu = time.perf_counter(), time.process_time()
        backend.enqueue_many(calls)
        report("enqueue_many", bulk, started, cpu)
    Job.objects.using(backend.database).filter(queue_name="bench").delete()


def report(what: str, count: int, started: float, cpu: float) -> None:
    rate = count / (time.perf_counter() - started)
    per_job = (time.process_time() - cpu) / count * 1e6
    print(f"{what}: {rate:,.0f} jobs/s, {per_job:.0f} µs client CPU per job", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "default")
