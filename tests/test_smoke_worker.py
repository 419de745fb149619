from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from tests import tasks


def test_burst_worker_runs_jobs_and_exits(spawn_worker, backend_alias):
    # Given two jobs
    first = tasks.add.using(backend=backend_alias).enqueue(1, 2)
    second = tasks.async_add.using(backend=backend_alias).enqueue(3, 4)
    # When a burst worker runs
    worker = spawn_worker("--burst", "--concurrency", "2", "--backend", backend_alias)
    # Then it exits 0 with both done
    assert worker.wait(60) == 0, worker.output()
    first.refresh()
    second.refresh()
    assert (first.return_value, second.return_value) == (3, 7)
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == 2
