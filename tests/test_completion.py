"""Batched outcome writes (the completer's path): one statement, fenced per row."""

from datetime import timedelta

from django.utils import timezone

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import task_backends
from django_jobs.worker.execution import Attempt, Outcome
from django_jobs.worker.outcomes import record_many
from tests import tasks


def test_a_batch_writes_every_outcome_it_still_owns_and_drops_the_lost_one(transactional_db):
    # Given three jobs claimed by worker A, one of which was since rescued and taken by B
    backend = task_backends["default"]
    results = [tasks.add.enqueue(i, i) for i in range(3)]
    now = timezone.now()
    claimed = backend.broker.claim("worker-a", [], 3, now)
    assert len(claimed) == 3
    lost = claimed[1]
    Job.objects.filter(pk=lost.pk).update(
        status=JobStatus.READY, lease_expires_at=None, claimed_by=None
    )
    [retaken] = backend.broker.claim("worker-b", [], 1, now + timedelta(seconds=1))
    assert retaken.pk == lost.pk
    outcomes = [
        Outcome(Attempt(job, "worker-a", backend), value={"n": n}) for n, job in enumerate(claimed)
    ]
    for outcome in outcomes:
        outcome.attempt.prepare()
    # When A writes its batch
    record_many(outcomes, backend.database, timezone.now())
    # Then its two jobs are SUCCESSFUL with their own values; B's job is untouched
    rows = {str(job.pk): job for job in Job.objects.all()}
    assert rows[str(claimed[0].pk)].status == JobStatus.SUCCESSFUL
    assert rows[str(claimed[0].pk)].return_value == {"n": 0}
    assert rows[str(claimed[2].pk)].return_value == {"n": 2}
    assert (rows[str(lost.pk)].status, rows[str(lost.pk)].claimed_by) == (
        JobStatus.RUNNING,
        "worker-b",
    )
    assert [o.attempt.outcome for o in outcomes] == ["SUCCESSFUL", "LOST", "SUCCESSFUL"]
    assert len(results) == 3


def test_a_batch_stores_a_none_return_value_as_null(transactional_db):
    backend = task_backends["default"]
    tasks.add.enqueue(1, 1)
    [job] = backend.broker.claim("worker-a", [], 1, timezone.now())
    outcome = Outcome(Attempt(job, "worker-a", backend), value=None)
    outcome.attempt.prepare()
    record_many([outcome], backend.database, timezone.now())
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.return_value) == (JobStatus.SUCCESSFUL, None)
