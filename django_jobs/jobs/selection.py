"""Find jobs the way an operator names them: full ids, unique id prefixes (the 8 characters
the admin shows), and filters on status, task and queue. Read-only."""

import uuid
from collections.abc import Iterable

from django.db import connections
from django.db.models import Q

from django_jobs.exceptions import JobsError
from django_jobs.jobs.models import Job

#: Shortest id prefix accepted: shorter ones match too many jobs to be a name.
MIN_PREFIX = 4


class JobNotFound(JobsError):
    """An id or prefix names no job, or more than one."""


def id_prefix(value: str) -> str:
    """Return ``value`` as lowercase hex without hyphens, or raise ValueError saying why."""
    text = value.strip().lower().replace("-", "")
    if not MIN_PREFIX <= len(text) <= 32 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(
            f"{value!r} is not a job id: give the full id or at least its first {MIN_PREFIX} "
            "hex characters (as the admin shows them)."
        )
    return text


def starts_with(database: str, prefix: str) -> Q:
    """A filter for ids starting with ``prefix`` (hex, no hyphens) on ``database``."""
    if connections[database].features.has_native_uuid_field:
        # PostgreSQL and MariaDB compare the id's text form, which has hyphens.
        cuts = [c for c in (8, 12, 16, 20) if c < len(prefix)]
        parts = [prefix[a:b] for a, b in zip([0, *cuts], [*cuts, None], strict=True)]
        prefix = "-".join(parts)
    return Q(pk__startswith=prefix)


def resolve(database: str, prefixes: Iterable[str]) -> list[uuid.UUID]:
    """The job id each prefix names; JobNotFound listing every unknown or ambiguous one."""
    jobs = Job.objects.using(database)
    found, problems = [], []
    for prefix in prefixes:
        if len(prefix) == 32:
            matches = list(jobs.filter(pk=uuid.UUID(prefix)).values_list("pk", flat=True))
        else:
            matching = jobs.filter(starts_with(database, prefix))
            matches = list(matching.values_list("pk", flat=True)[:2])
        if not matches:
            problems.append(f"no job id starts with {prefix!r}")
        elif len(matches) > 1:
            count = matching.count()
            problems.append(f"{prefix!r} is ambiguous: {count} job ids start with it")
        else:
            found.append(matches[0])
    if problems:
        raise JobNotFound("; ".join(problems) + ".")
    return found


def select(database: str, backend: str, ids=(), status=None, task=None, queue=None):
    """The jobs named by ``ids`` (prefixes) and matching every filter given."""
    jobs = Job.objects.using(database)
    if ids:
        jobs = jobs.filter(pk__in=resolve(database, ids))
    if status or task or queue:
        jobs = jobs.filter(backend=backend)
    if status:
        jobs = jobs.filter(status=status)
    if task:
        jobs = jobs.filter(task_path=task)
    if queue:
        jobs = jobs.filter(queue_name=queue)
    return jobs
