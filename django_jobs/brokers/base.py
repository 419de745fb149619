"""The Broker protocol every dispatch mechanism implements."""

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol


class Broker(Protocol):
    """Publish enqueued jobs, claim them for a worker, wake sleeping workers."""

    #: What operators should know about dispatch right now, shown on the worker's row ("" if
    #: nothing), e.g. that Redis is unreachable and the worker polls the database.
    note: str

    def publish(self, jobs: Sequence) -> None:
        """Make READY job rows known to workers, once the current transaction commits.

        Called by enqueue, and by the worker for jobs it puts back in the queue (retries,
        rescued and handed-back jobs). Never raises for an unavailable broker.
        """

    def claim(self, worker_id: str, queues: Sequence[str], limit: int, now: datetime) -> list:
        """Mark up to ``limit`` ready jobs RUNNING for ``worker_id`` and return them."""

    def set_paused(self, queues: frozenset[str]) -> None:
        """Claim nothing from ``queues`` until the next call (the worker refreshes it)."""

    def sweep(self, now: datetime, every: float | None = None) -> int:
        """Reconcile dispatch state with the database (workers call it from their heartbeat);
        with ``every``, at most once per ``every`` seconds across all workers. Return how many
        jobs were re-published."""

    def listen(self, wake: threading.Event, queues: Sequence[str] = ()) -> None:
        """Set ``wake`` whenever new work may be ready in ``queues`` (empty: any), until
        ``close()``."""

    def close(self) -> None:
        """Release connections and stop listening."""
