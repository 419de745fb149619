"""The benchmark's task: as cheap as a task can be."""

from django_jobs import task


@task(queue_name="bench")
def noop(i: int) -> int:
    return i
