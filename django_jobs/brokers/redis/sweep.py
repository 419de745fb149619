"""The sweeper: put Redis back in line with the database, the source of truth.

Each sweep is bounded (``batch`` rows or ids per step) and safe when several workers run it
at once: every Redis change is a guarded script, and a job re-added twice is claimed once.

1. reclaim: in-flight ids whose lease ran out (their claimer died between the Redis pop and
   the database claim) go back to their ready set if the row is still READY, else are dropped;
2. resync: when the ``synced`` marker is gone (FLUSHDB, a restart without persistence, a new
   Redis), every READY row is re-published, streamed from the claim index;
3. window: otherwise the first ``batch`` due READY rows in claim order (limited jobs left
   out, as in the claim) that Redis holds nowhere are re-published: retries, rescued jobs,
   jobs enqueued while Redis was down;
4. prune: one chunk of one ready/delayed set is checked against the database, and ids whose
   rows are gone or no longer READY (cancelled, purged) are dropped. (A claim that pops
   nothing but such ids prunes the head of its queues' ready sets at once: ``prune_head``.)
"""

import logging
from datetime import datetime

from django_jobs.brokers.redis.store import Entry, Store, delayed_id, epoch_ms

logger = logging.getLogger(__name__)

SWEEP_BATCH = 1000
RESYNC_LOCK_SECONDS = 60


class Sweeper:
    def __init__(self, store: Store, database: str, alias: str, batch: int = SWEEP_BATCH):
        self.store = store
        self.database = database
        self.alias = alias
        self.batch = batch
        self._prune_at = (0, 0)  # (key index, offset): where the next prune chunk starts

    def _jobs(self):
        from django_jobs.jobs.models import Job
        from django_jobs.jobs.status import JobStatus

        # Gated jobs (concurrency/rate limits) are claimed from the database, never published.
        jobs = Job.objects.using(self.database).filter(backend=self.alias, status=JobStatus.READY)
        return jobs.filter(limit_key__isnull=True)

    def sweep(self, now: datetime) -> int:
        """Run the four steps once; return how many jobs were re-published."""
        now_ms = epoch_ms(now)
        published = self.reclaim(now_ms)
        keys = self.store.keys
        if not self.store.redis.exists(keys.synced) and self.store.take_lock(
            keys.resync_lock, RESYNC_LOCK_SECONDS
        ):
            published += self.resync(now_ms)
        else:
            published += self.window(now, now_ms)
        self.prune()
        if published:
            logger.info("sweeper re-published jobs=%s backend=%s", published, self.alias)
        return published

    def reclaim(self, now_ms: int) -> int:
        ids = self.store.expired(now_ms, self.batch)
        if not ids:
            return 0
        ready = {e.id: e for e in _entries(_fields(self._jobs().filter(pk__in=ids)))}
        entries = [ready.get(i, Entry(i, "", 0, 0)) for i in ids]
        return self.store.restore(entries, now_ms, mode="expired")

    def resync(self, now_ms: int) -> int:
        # Marked first: data lost again during the resync removes the marker and we run again.
        keys = self.store.keys
        self.store.redis.set(keys.synced, "1")
        published = 0
        chunk: list[Entry] = []
        for row in _fields(self._jobs()).iterator(chunk_size=self.batch):
            chunk += _entries([row])
            if len(chunk) >= self.batch:
                published += self.store.restore(chunk, now_ms)
                self.store.redis.expire(keys.resync_lock, RESYNC_LOCK_SECONDS)
                chunk = []
        published += self.store.restore(chunk, now_ms)
        self.store.redis.delete(keys.resync_lock)
        logger.info("redis resynced from the database jobs=%s backend=%s", published, self.alias)
        return published

    def window(self, now: datetime, now_ms: int) -> int:
        from django_jobs.jobs.models import Job

        # Limited jobs are left out as in the claim: 1,000 of them waiting on their gate
        # would otherwise fill every window and hide a lost ordinary job behind them.
        due = Job.objects.using(self.database).ready(now).filter(backend=self.alias)
        due = due.filter(limit_key__isnull=True)
        rows = _fields(due.order_by("-priority", "run_after"))[: self.batch]
        return self.store.restore(_entries(rows), now_ms)

    def prune(self) -> int:
        """Drop one chunk's ids whose rows are gone or no longer READY; return how many."""
        keys = []
        for queue in self.store.queues():
            keys += [self.store.keys.ready(queue), self.store.keys.delayed(queue)]
        if not keys:
            return 0
        index, offset = self._prune_at
        key = keys[index % len(keys)]
        members = self.store.redis.zrange(key, offset, offset + self.batch - 1)
        self._prune_at = (
            (index, offset + self.batch)
            if len(members) == self.batch
            else ((index + 1) % len(keys), 0)
        )
        return self._drop_stale(key, members)

    def prune_head(self, queues: list[str]) -> int:
        """Drop the stale ids among the first ``batch`` of each of ``queues``' ready sets.

        The claim calls it when a pop brought out nothing but stale ids: after a bulk delete
        or cancel, thousands of them can lie ahead of the live jobs, more than popping a few at
        a time gets through before the claim has to answer.
        """
        dropped = 0
        for queue in queues:
            key = self.store.keys.ready(queue)
            dropped += self._drop_stale(key, self.store.redis.zrange(key, 0, self.batch - 1))
        return dropped

    def _drop_stale(self, key: str, members: list[bytes]) -> int:
        if not members:
            return 0
        delayed = key.startswith(self.store.keys.delayed(""))
        ids = {m: delayed_id(m) if delayed else m.decode() for m in members}
        ready = self._jobs().filter(pk__in=ids.values()).values_list("pk", flat=True)
        live = {str(pk) for pk in ready}
        stale = [m for m, i in ids.items() if i not in live]
        if stale:
            self.store.redis.zrem(key, *stale)
        return len(stale)


def _fields(jobs):
    return jobs.values_list("pk", "queue_name", "priority", "run_after")


def _entries(rows) -> list[Entry]:
    return [
        Entry(str(pk), queue, priority, epoch_ms(run_after))
        for pk, queue, priority, run_after in rows
    ]
