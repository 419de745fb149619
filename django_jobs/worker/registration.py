"""Worker rows: register at start (and again if the row was deleted), mark stopped at exit."""

import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone

from django_jobs.jobs.models import Worker


def register(
    database: str,
    backend: str,
    queues: Sequence[str],
    processes: int,
    concurrency: int,
    worker_id: str = "",
    started_at: datetime | None = None,
    note: str = "",
) -> str:
    """Insert this process's Worker row and return its id.

    With ``worker_id`` (a worker whose row was deleted while it ran: the admin, or
    ``jobs prune-workers``), write the row again under that id: the leases and completions of
    its running jobs are fenced by it.
    """
    now = timezone.now()
    worker, _ = Worker.objects.using(database).get_or_create(
        id=worker_id or uuid.uuid4().hex,
        defaults={
            "backend": backend,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(queues),
            "processes": processes,
            "concurrency": concurrency,
            "started_at": started_at or now,
            "last_heartbeat_at": now,
            "note": note,
        },
    )
    return worker.pk


def set_note(database: str, worker_id: str, note: str) -> None:
    """Show ``note`` ("" for none) on the worker's row, for the admin and the dashboard."""
    Worker.objects.using(database).filter(pk=worker_id).update(note=note)


def mark_stopped(database: str, worker_id: str) -> None:
    Worker.objects.using(database).filter(pk=worker_id).update(stopped_at=timezone.now())
