"""The benchmark's task: as cheap as a task can be."""

from django_jobs import task
from django_jobs.bench import QUEUE


@task(queue_name=QUEUE)
def noop(i: int) -> int:
    return i
