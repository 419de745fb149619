"""Workflow state: when a step ends, start the steps waiting for it, or stop the workflow.

A BLOCKED step counts the steps it still waits for (``Job.waiting_on``). When a step ends, in
the same transaction as its outcome, ``advance`` decrements its dependents' counters with one
guarded UPDATE and turns the ones that reached zero READY, feeding them their parents' results.
The UPDATE locks the counters, so when siblings finish at once exactly one of them sees zero:
a chord's callback fires once. Jobs outside workflows never come here (``Job.workflow_id`` is
NULL). Failure policy: see ``docs/workflows.md``.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime

from django.db.models import F
from django.utils import timezone

from django_jobs.jobs.models import FailurePolicy, Job
from django_jobs.jobs.status import JobStatus


def advance(database: str, job, status: str, now: datetime) -> list:
    """Step ``job`` ended with ``status`` (in the caller's transaction): start the steps that
    no longer wait for anything, or stop the workflow. Return the jobs made READY."""
    from django_jobs.jobs.models import Job
    from django_jobs.jobs.status import JobStatus

    jobs = Job.objects.using(database)
    step = jobs.filter(pk=job.pk).values("workflow_id", "dependents", "workflow__on_failure")
    row = step.first()
    if row is None or row["workflow_id"] is None:
        return []
    if status != JobStatus.SUCCESSFUL and row["workflow__on_failure"] == FailurePolicy.STOP:
        stop(database, row["workflow_id"], job.pk, now)
        return []
    if not row["dependents"]:
        return []
    blocked = jobs.filter(pk__in=row["dependents"], status=JobStatus.BLOCKED)
    # The UPDATE locks each dependent: of siblings finishing together, one sees zero.
    blocked.update(waiting_on=F("waiting_on") - 1)
    return [
        activate(database, pk, now)
        for pk in blocked.filter(waiting_on=0).values_list("pk", flat=True)
    ]


def activate(database: str, pk, now: datetime):
    """Turn a BLOCKED step READY, giving it its parents' results as its first argument."""
    jobs = Job.objects.using(database)
    job = jobs.get(pk=pk)
    args = list(job.args)
    if job.feed:
        values = dict(jobs.filter(pk__in=job.depends_on).values_list("pk", "return_value"))
        results = [values.get(uuid.UUID(parent)) for parent in job.depends_on]
        args.insert(0, results[0] if job.feed == "value" else results)
    run_after = max(job.run_after, now)
    jobs.filter(pk=pk).activate(args, run_after)
    job.status, job.args, job.run_after = JobStatus.READY, args, run_after
    return job


def stop(database: str, workflow_id, failed_pk, now: datetime) -> int:
    """Cancel the steps of a workflow that have not started (a step failed)."""
    steps = Job.objects.using(database).filter(workflow_id=workflow_id)
    return steps.cancel(now, f"workflow stopped: step {failed_pk} failed")


def ended(database: str, finished: Sequence) -> list:
    """``advance`` each ``(job, status)`` of workflow steps; return the jobs made READY."""
    now = timezone.now()
    activated: list = []
    for job, status in finished:
        activated += advance(database, job, status, now)
    return activated
