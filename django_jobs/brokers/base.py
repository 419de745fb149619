"""The Broker protocol every dispatch mechanism implements."""

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol


class Broker(Protocol):
    """Publish enqueued jobs, claim them for a worker, wake sleeping workers."""

    def publish(self, jobs: Sequence) -> None:
        """Make freshly written job rows known to workers (after commit, where it matters)."""

    def claim(self, worker_id: str, queues: Sequence[str], limit: int, now: datetime) -> list:
        """Mark up to ``limit`` ready jobs RUNNING for ``worker_id`` and return them."""

    def set_paused(self, queues: frozenset[str]) -> None:
        """Claim nothing from ``queues`` until the next call (the worker refreshes it)."""

    def listen(self, wake: threading.Event) -> None:
        """Set ``wake`` whenever new work may be ready, until ``close()``."""

    def close(self) -> None:
        """Release connections and stop listening."""
