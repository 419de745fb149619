"""The Redis broker while Redis is unreachable: claim straight from the database.

The job table is the source of truth, so a worker whose Redis is down keeps serving its queues
with the database broker's claim (the same queues, paused queues and limits), polling every
``poll_interval`` (PostgreSQL: woken by NOTIFY too). It says so once in its log and on its
worker row. A thread of its own pings Redis once per ``heartbeat_interval`` (a Redis that hangs
never holds up the claim loop); once Redis answers, the next claim goes through Redis again,
sweeps (re-publishing the jobs enqueued during the outage) and stays on Redis dispatch.

No job is handed out twice: both paths claim rows with an UPDATE guarded by ``status =
READY``, so an id still in Redis whose row the database claim took is dropped when popped.
"""

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import redis
from django.db import DatabaseError, InterfaceError

from django_jobs.brokers.database import DatabaseBroker
from django_jobs.brokers.redis.broker import RedisBroker
from django_jobs.exceptions import BrokerUnavailable

logger = logging.getLogger(__name__)

#: Seconds a probe waits for Redis to connect and to answer PING.
PING_TIMEOUT = 2.0
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
        self._answered = threading.Event()  # the probe got a PONG: try a Redis claim
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._probing = False
        self._wake: threading.Event | None = None
        self._shown = ""  # the note the worker row shows (registered with "")
        #: Writes ``note`` on the worker's row; the worker sets it (brokers write no rows).
        self.write_note: Callable[[str, str], None] = lambda worker_id, note: None

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
        if self.fallback and not self._answered.is_set():
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
        self._answered.clear()
        if not self.fallback:  # one line when it goes, one when it comes back
            self.down_since = time.monotonic()
            fallback = DatabaseBroker(self.options, self.alias)
            fallback.set_paused(self.redis.paused)
            if self._wake is not None:
                fallback.listen(self._wake)  # PostgreSQL: NOTIFY wakes us during the outage
            self.fallback = fallback
            logger.warning(
                "redis unreachable, polling the database until it answers worker=%s error=%s",
                worker_id,
                error,
            )
        with self._lock:
            if not self._probing:
                self._probing = True
                threading.Thread(
                    target=self._probe, name="django-jobs-redis-probe", daemon=True
                ).start()

    def _probe(self) -> None:
        """Ping Redis once per heartbeat interval while the worker claims from the database."""
        client = redis.Redis.from_url(
            self.options.redis_url, socket_connect_timeout=PING_TIMEOUT, socket_timeout=PING_TIMEOUT
        )
        try:
            while not self._closed.wait(self.options.heartbeat_interval):
                with self._lock:
                    if not self.fallback:
                        self._probing = False
                        return
                if self._answered.is_set():
                    continue  # the claim loop has yet to try
                try:
                    client.ping()
                except redis.RedisError:
                    continue
                self._answered.set()
                if self._wake is not None:
                    self._wake.set()
        finally:
            client.close()

    def _recover(self, worker_id: str, now: datetime) -> None:
        fallback, self.fallback = self.fallback, None
        fallback.close()
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
            self.write_note(worker_id, self.note)
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
        self._closed.set()
        self.redis.close()
        if self.fallback:
            self.fallback.close()
