"""Redis dispatch, with the database as the source of truth.

Enqueue writes the row as with the database broker, then, once the transaction commits, adds
the id to its queue's ready set (or the delayed set) and pushes wake-up tokens. A worker's
listener thread waits on the tokens with a blocking pop and wakes the claim loop; the claim
moves the best ids to in-flight in one Lua script, then claims their rows with a guarded
UPDATE (status READY), so an id delivered twice runs once. The sweeper (``redis_sweep``)
repairs whatever Redis lost. Layout of the keys: ``redis_store``.
"""

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial

import redis
from django.db import DatabaseError, InterfaceError, transaction

from django_jobs.brokers.gated import GatedClaims
from django_jobs.brokers.redis import publisher
from django_jobs.brokers.redis.store import Entry, Store, epoch_ms
from django_jobs.brokers.redis.sweep import Sweeper
from django_jobs.conf import JobsOptions
from django_jobs.exceptions import BrokerUnavailable
from django_jobs.jobs.claims import claim_ids, claim_reconnecting

logger = logging.getLogger(__name__)

#: Pops of nothing but stale ids one claim goes through before it reports "nothing ready".
MAX_STALE_ROUNDS = 100
#: Seconds one blocking pop waits before the listener checks whether it should stop.
BLOCK_SECONDS = 1.0
#: Seconds a process skips pushes after one failed (the sweeper publishes those jobs).
PUSH_PAUSE_SECONDS = 5.0


class RedisBroker:
    """Publish ids to Redis on commit; claim them back through a reliable pop."""

    note = ""  # see ``fallback.RedisWithFallback`` for the note while Redis is down

    def __init__(self, options: JobsOptions, alias: str = "default"):
        self.options = options
        self.alias = alias
        self.database = options.database
        self.store = Store(options.redis_url, options.redis_prefix, alias)
        self.sweeper = Sweeper(self.store, self.database, alias)
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None
        self._push_again_at = 0.0
        #: Ids the database decided about since the last pop, settled by the next one.
        self._decided: list[str] = []
        #: Paused queue names, refreshed by the worker's heartbeat.
        self.paused: frozenset[str] = frozenset()
        #: A safety net only: workers are woken by a blocking pop.
        self.poll_interval = options.poll_interval_for("redis", pushed=True)
        self.gated = GatedClaims(self.database, alias, self.poll_interval, poll_when_idle=False)

    def publish(self, jobs: Sequence) -> None:
        # A worker may requeue (rescue) jobs of other backends sharing its database. Gated
        # jobs (concurrency/rate limits) stay on the database's gated claim path.
        entries = [
            Entry.of(job) for job in jobs if job.backend == self.alias and job.limit_key is None
        ]
        if entries:
            transaction.on_commit(partial(self._push, entries), using=self.database)

    def _push(self, entries: list[Entry]) -> None:
        # The row is written either way: the sweeper publishes it once Redis answers again.
        # After a failed push, skip pushes for a while: enqueue must not wait on a dead Redis.
        if time.monotonic() < self._push_again_at:
            logger.debug("redis unavailable, push skipped jobs=%s", len(entries))
            return
        try:
            publisher.push(self.store, entries)
        except redis.RedisError as e:
            self._push_again_at = time.monotonic() + PUSH_PAUSE_SECONDS
            logger.warning(
                "redis unavailable, the sweeper will publish jobs=%s first_job_id=%s error=%r",
                len(entries),
                entries[0].id,
                e,
            )

    def set_paused(self, queues: frozenset[str]) -> None:
        self.paused = frozenset(queues)

    def claim(self, worker_id: str, queues: Sequence[str], limit: int, now: datetime) -> list:
        jobs = self._claim_published(worker_id, queues, limit, now)
        # Gated jobs are never published: they are claimed from the database.
        return self.gated.top_up(
            jobs, worker_id, queues, self.paused, limit, now, self.options.lease
        )

    def _claim_published(self, worker_id, queues, limit: int, now: datetime) -> list:
        try:
            queues = list(queues) or self.store.queues()
        except redis.RedisError as e:
            raise BrokerUnavailable(f"redis: {e}") from e
        queues = [queue for queue in queues if queue not in self.paused]
        # Stale ids (rows cancelled, deleted or already running) are dropped as they come
        # out; pop again rather than report "nothing ready" (a burst worker would stop). A
        # round of nothing but stale ids prunes the head of the ready sets first: after a bulk
        # delete, thousands can lie ahead of the live jobs.
        for _ in range(MAX_STALE_ROUNDS):
            ids = self._pop(queues, limit, now) if queues else []
            if not ids:
                return []
            jobs = self._claim_rows(ids, worker_id, now)
            if jobs:
                return jobs
            self._prune_head(queues)
        return []

    def _prune_head(self, queues: list[str]) -> None:
        try:
            dropped = self.sweeper.prune_head(queues)
        except redis.RedisError as e:
            raise BrokerUnavailable(f"redis: {e}") from e
        if dropped:
            logger.info("dropped stale ids ahead of the ready jobs dropped=%s", dropped)

    def _pop(self, queues: list[str], limit: int, now: datetime) -> list[str]:
        try:
            lease_ms = int(self.options.lease_seconds * 1000)
            ids = self.store.pop(queues, limit, epoch_ms(now), lease_ms, self._decided)
        except redis.RedisError as e:
            raise BrokerUnavailable(f"redis: {e}") from e
        self._decided = []  # settled by that pop (kept for the next one if it failed)
        return ids

    def _claim_rows(self, ids: list[str], worker_id: str, now: datetime) -> list:

        try:
            # A new connection at once if the old one was dropped: the ids are popped now, and
            # otherwise wait for a sweep (a proxy closing idle connections would fail every
            # first claim after a pause, and the jobs would never be claimed).
            jobs = claim_reconnecting(
                self.database,
                worker_id,
                now,
                partial(
                    claim_ids,
                    self.database,
                    self.alias,
                    ids,
                    worker_id,
                    now,
                    self.options.lease,
                    self.options.relaxed_commits,
                    self.options.listen,
                ),
            )
        except (DatabaseError, InterfaceError):
            # The rows were not claimed: let the next sweep put the ids back at once, instead
            # of after the lease (the sweep needs the database, which is what just failed).
            self._expire(ids)
            raise
        if len(jobs) < len(ids):
            logger.debug("dropped ids whose rows are not ready dropped=%s", len(ids) - len(jobs))
        # The database decided about these ids: the next pop drops them from in-flight (one
        # round trip less per claim; until then their in-flight lease covers them, and if no
        # pop comes the sweeper drops them once it runs out, their rows being claimed).
        self._decided += ids
        order = {job_id: n for n, job_id in enumerate(ids)}
        return sorted(jobs, key=lambda job: order[str(job.pk)])

    def _expire(self, ids: list[str]) -> None:
        try:
            self.store.expire(ids)
        except redis.RedisError as e:
            logger.warning("could not release in-flight ids=%s error=%r", len(ids), e)

    def sweep(self, now: datetime, every: float | None = None) -> int:
        self.gated.refresh(now)  # gated jobs are never in Redis: look for them in the database
        try:
            if every and not self.store.take_lock(self.store.keys.sweep_lock, every):
                return 0
            return self.sweeper.sweep(now)
        except redis.RedisError as e:
            logger.warning("sweep skipped, redis unavailable error=%r", e)
            return 0

    # --- waiting --------------------------------------------------------------------------
    def listen(self, wake: threading.Event, queues: Sequence[str] = ()) -> None:
        if self._listener:
            return
        keys = [self.store.keys.wakeup(q) for q in queues] or [self.store.keys.wakeup_all]
        self._listener = threading.Thread(
            target=self._listen, args=(wake, keys), name="django-jobs-redis", daemon=True
        )
        self._listener.start()

    def _listen(self, wake: threading.Event, keys: list[str]) -> None:
        # A connection of its own: the blocking pop must not hold a pooled one.
        conn = redis.Redis.from_url(
            self.options.redis_url,
            socket_connect_timeout=2,
            socket_timeout=BLOCK_SECONDS + 5,
            client_name=f"{self.store.keys.base}:listen",
        )
        failures = 0
        while not self._closed.is_set():
            try:
                token = conn.blpop(keys, timeout=BLOCK_SECONDS)
            except redis.RedisError as e:
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), 5.0)
                # One warning per outage; the claim loop says what it does meanwhile.
                log = logger.warning if failures == 1 else logger.debug
                log("redis listener lost error=%r; reconnecting in %.1fs", e, delay)
                self._closed.wait(delay)
                continue
            if failures:
                logger.info("redis listener reconnected after failures=%s", failures)
                failures = 0
                wake.set()  # anything published while we were away
            if token:
                wake.set()
        conn.close()

    def close(self) -> None:
        self._closed.set()
        if self._decided:  # no pop will come: settle them now (else the sweeper would)
            try:
                self.store.settle(self._decided)
            except redis.RedisError as e:
                logger.debug("could not settle in-flight ids=%s error=%r", len(self._decided), e)
            self._decided = []
