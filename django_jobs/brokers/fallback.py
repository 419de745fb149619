"""The Redis broker while Redis is unreachable: claim straight from the database.

The job table is the source of truth, so a worker whose Redis is down keeps serving its queues
with the database broker's claim (the same queues, paused queues and limits), polling every
``poll_interval`` (PostgreSQL: woken by NOTIFY too). It says so once in its log and on its
worker row, tries Redis again at most once per ``heartbeat_interval``, and when Redis answers
it sweeps (re-publishing the jobs enqueued during the outage) and goes back to Redis dispatch.

No job is handed out twice: both paths claim rows with an UPDATE guarded by ``status =
READY``, so an id still in Redis whose row the database claim took is dropped when popped.
"""

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime

from django.db import DatabaseError, InterfaceError

from .. import workers
from ..exceptions import BrokerUnavailable
from .database import DatabaseBroker
from .redis import RedisBroker

logger = logging.getLogger(__name__)

#: Shown on the worker's row (admin, dashboard) while it claims from the database.
OUTAGE_NOTE = "Redis unreachable: polling the database"


class RedisWithFallback:
    """A Redis broker that claims from the database while Redis does not answer."""

    def __init__(self, redis_broker: RedisBroker):
        self.redis = redis_broker
        self.options = redis_broker.options
        self.alias = redis_broker.alias
        #: The database broker claiming while Redis is down; None while Redis answers.
        self.fallback: DatabaseBroker | None = None
        self.down_since = 0.0
        self._retry_at = 0.0
        self._wake: threading.Event | None = None
        self._shown = ""  # the note the worker row shows (registered with "")

    @property
    def note(self) -> str:
        return OUTAGE_NOTE if self.fallback else ""

    @property
    def poll_interval(self) -> float:
        return (self.fallback or self.redis).poll_interval

    @property
    def store(self):
        return self.redis.store

    @property
    def gated(self):
        return self.redis.gated

    def publish(self, jobs: Sequence) -> None:
        # While Redis is down the push fails and is logged; the sweep publishes the rows later.
        self.redis.publish(jobs)

    def set_paused(self, queues: frozenset[str]) -> None:
        self.redis.set_paused(queues)
        if self.fallback:
            self.fallback.set_paused(queues)

    def claim(self, worker_id: str, queues: Sequence[str], limit: int, now: datetime) -> list:
        if self.fallback and time.monotonic() < self._retry_at:
            jobs = self.fallback.claim(worker_id, queues, limit, now)
        else:
            try:
                jobs = self.redis.claim(worker_id, queues, limit, now)
            except BrokerUnavailable as e:
                self._fall_back(worker_id, e)
                jobs = self.fallback.claim(worker_id, queues, limit, now)
            else:
                if self.fallback:
                    self._recover(worker_id, now)
        self._show_note(worker_id)
        return jobs

    def _fall_back(self, worker_id: str, error: BrokerUnavailable) -> None:
        self._retry_at = time.monotonic() + self.options.heartbeat_interval
        if self.fallback:
            return  # still down: one line when it went, one when it comes back
        self.down_since = time.monotonic()
        self.fallback = DatabaseBroker(self.options, self.alias)
        self.fallback.set_paused(self.redis.paused)
        if self._wake is not None:
            self.fallback.listen(self._wake)  # PostgreSQL: NOTIFY wakes us during the outage
        logger.warning(
            "redis unreachable, polling the database until it answers worker=%s error=%s",
            worker_id,
            error,
        )

    def _recover(self, worker_id: str, now: datetime) -> None:
        self.fallback.close()
        self.fallback = None
        logger.info(
            "redis answers again, dispatching through redis again worker=%s down_for=%.0fs",
            worker_id,
            time.monotonic() - self.down_since,
        )
        try:  # publish what was enqueued during the outage now, not a heartbeat later
            self.redis.sweep(now)
        except (DatabaseError, InterfaceError) as e:
            logger.warning("sweep after the outage failed worker=%s error=%r", worker_id, e)
        if self._wake is not None:
            self._wake.set()

    def _show_note(self, worker_id: str) -> None:
        """Keep the worker row's note in line with the dispatch mode (retried until written)."""
        if self._shown == self.note:
            return
        try:
            workers.set_note(self.options.database, worker_id, self.note)
        except (DatabaseError, InterfaceError) as e:
            logger.debug("could not write the worker note worker=%s error=%r", worker_id, e)
            return
        self._shown = self.note

    def sweep(self, now: datetime, every: float | None = None) -> int:
        if self.fallback:
            return 0  # Redis is down; the sweep after it answers again catches up
        return self.redis.sweep(now, every)

    def listen(self, wake: threading.Event, queues: Sequence[str] = ()) -> None:
        self._wake = wake
        self.redis.listen(wake, queues)

    def close(self) -> None:
        self.redis.close()
        if self.fallback:
            self.fallback.close()
