"""Enqueue a mixed handful of demo jobs and print their ids."""

from django.core.management.base import BaseCommand

from testproject.demo import tasks


class Command(BaseCommand):
    help = "Enqueue a few demo jobs (add, slow, flaky, report, async_sleep) and print their ids."

    def handle(self, *args, **options):
        calls = [
            (tasks.add, (1, 2), {}),
            (tasks.add, (40, 2), {}),
            (tasks.slow.using(queue_name="emails"), (), {"seconds": 1.0}),
            (tasks.slow.using(queue_name="emails"), (), {"seconds": 3.0}),
            (tasks.flaky, (), {"fail_rate": 0.5}),
            (tasks.flaky, (), {"fail_rate": 0.9}),
            (tasks.report.using(queue_name="reports"), (), {"steps": 5}),
            (tasks.report.using(queue_name="reports"), (), {"steps": 10}),
            (tasks.async_sleep, (), {"seconds": 1.0}),
            (tasks.async_sleep, (), {"seconds": 2.0}),
        ]
        for task, args, kwargs in calls:
            result = task.enqueue(*args, **kwargs)
            self.stdout.write(f"enqueued {task.name} queue={task.queue_name} id={result.id}")
        self.stdout.write(self.style.SUCCESS(f"{len(calls)} demo jobs enqueued"))
