"""Worker rows: register at start, mark stopped at exit."""

import os
import socket
import uuid
from collections.abc import Sequence

from django.utils import timezone

from .models import Worker


def register(
    database: str, backend: str, queues: Sequence[str], processes: int, concurrency: int
) -> str:
    """Insert this process's Worker row and return its id."""
    now = timezone.now()
    worker = Worker.objects.using(database).create(
        id=uuid.uuid4().hex,
        backend=backend,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        queues=list(queues),
        processes=processes,
        concurrency=concurrency,
        started_at=now,
        last_heartbeat_at=now,
    )
    return worker.pk


def mark_stopped(database: str, worker_id: str) -> None:
    Worker.objects.using(database).filter(pk=worker_id).update(stopped_at=timezone.now())
