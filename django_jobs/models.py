"""The app's models, imported from the packages that own them so Django registers them.

Also the public place to import them from: ``from django_jobs.models import Job, JobStatus``.
"""

from django_jobs.beat.models import MissedRuns, Schedule, ScheduleFire
from django_jobs.console.models import Dashboard
from django_jobs.jobs.models import Gate, Job, JobMinute, Queue, Worker, Workflow
from django_jobs.jobs.status import JobStatus

__all__ = [
    "Dashboard",
    "Gate",
    "Job",
    "JobMinute",
    "JobStatus",
    "MissedRuns",
    "Queue",
    "Schedule",
    "ScheduleFire",
    "Worker",
    "Workflow",
]
