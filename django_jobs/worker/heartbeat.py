"""A worker process's heartbeat: renew its leases, pass on cancellations, rescue, sweep,
roll up counters and prune old jobs.

``heartbeat_once(now)`` is one beat (the tests call it directly); the thread runs it every
``heartbeat_interval`` until the process has finished every job and written every outcome,
not merely until it is asked to stop: a draining worker's jobs still run and keep their leases.
"""

import logging
import random
import threading
import time
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError, connections
from django.utils import timezone

from django_jobs.db.reconnect import call_reconnecting
from django_jobs.db.transient import SERVICE_ERRORS, is_transient
from django_jobs.jobs import leases, operations, retention, rollup
from django_jobs.logs import fields

logger = logging.getLogger(__name__)

#: How often a worker rolls finished jobs up into the per-minute counters.
ROLLUP_EVERY = 60.0


class Heartbeat:
    """The heartbeat of one ``WorkerProcess`` (``process``)."""

    def __init__(self, process):
        self.process = process
        self.database = process.database
        self.options = process.options
        self.thread = threading.Thread(target=self.run, name="django-jobs-heartbeat", daemon=True)
        #: When the last renewal succeeded (monotonic clock).
        self.last_ok = time.monotonic()
        self.next_rollup = time.monotonic()
        # Processes started together do not all prune at the same moment.
        jitter = random.uniform(0, self.options.prune_interval or 0)  # noqa: S311  (no secret)
        self.next_prune = time.monotonic() + jitter

    @property
    def ident(self) -> int | None:
        return self.thread.ident

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def run(self) -> None:
        interval = self.options.heartbeat_interval
        self.last_ok = self.next_rollup = time.monotonic()
        while not self.process.finished.wait(interval):
            if not self.heartbeat_once(timezone.now()):
                break
        connections[self.database].close()

    def heartbeat_once(self, now: datetime) -> bool:
        """One beat; False when the leases are lost and the process must stop now."""
        process = self.process
        ids = process.pool.running_ids()
        renewed = self._safely(
            "heartbeat",
            leases.renew,
            self.database,
            process.worker_id,
            now,
            self.options.lease,
            ids,
        )
        if renewed is False:  # row deleted (admin, prune-workers): write it again, same id
            renewed = self._safely("re-register", self._register_again)
        if renewed:
            self.last_ok = time.monotonic()
        if renewed is None:
            process.renewals_failing.set()
        else:
            process.renewals_failing.clear()
        self._check_cancelled(ids)
        self._safely("rescue", self._rescue, now)
        self._safely("sweep", process.broker.sweep, now, self.options.heartbeat_interval)
        paused = self._safely("paused queues", operations.paused_queues, self.database)
        if paused is not None:
            process.broker.set_paused(paused)
        self._rollup(now)
        self._prune(now)
        silent = time.monotonic() - self.last_ok
        if silent > self.options.lease_seconds - self.options.heartbeat_interval:
            logger.error(
                "heartbeats failing for %.0fs, leases lost; stopping worker=%s",
                silent,
                process.worker_id,
            )
            process.leases_lost()
            return False
        return True

    def _register_again(self) -> bool:
        self.process._register()
        logger.warning("worker row was deleted, registered again worker=%s", self.process.worker_id)
        return True

    def _rescue(self, now: datetime) -> int:
        return leases.rescue_expired(self.database, now, requeued=self.process.broker.publish)

    def _check_cancelled(self, ids) -> None:
        """Pass cancellation requests on to running jobs (one query per heartbeat)."""
        process = self.process
        cancelled = self._safely(
            "cancel check", leases.cancel_requested, self.database, process.worker_id, ids
        )
        if cancelled:
            process.pool.request_cancel(cancelled, time.monotonic())
            process.wake.set()  # enforce a zero grace period at once

    def _safely(self, what: str, func, *args):
        """Call a housekeeping query; on a database or broker error log it, return None."""
        try:
            return call_reconnecting(self.database, func, *args, tries=3, pause=0.1)
        except SERVICE_ERRORS as e:
            connections[self.database].close()
            if not is_transient(e):
                self.process._fatal(what, e)
                return None
            logger.warning("%s failed worker=%s error=%r", what, self.process.worker_id, e)
            return None

    def _rollup(self, now: datetime) -> None:
        """Roll up an hour of counters at most, when due."""
        if time.monotonic() < self.next_rollup:
            return
        try:
            caught_up = rollup.rollup(self.database, now, limit=timedelta(hours=1))
        except (DatabaseError, InterfaceError) as e:
            logger.warning("rollup failed worker=%s error=%r", self.process.worker_id, e)
            self.next_rollup = time.monotonic() + ROLLUP_EVERY
            return
        behind = caught_up < rollup.floor_minute(now - rollup.LAG)
        self.next_rollup = time.monotonic() + (0 if behind else ROLLUP_EVERY)

    def _prune(self, now: datetime) -> None:
        """Delete a few batches of jobs past their retention, when due (at once again while
        a pass uses its whole budget: a backlog is caught up one heartbeat at a time)."""
        interval = self.options.prune_interval
        if interval is None or time.monotonic() < self.next_prune:
            return
        self.next_prune = time.monotonic() + interval
        try:
            deleted = retention.prune(
                self.database, now, self.options.retention_periods(), self.options.history
            )
        except (DatabaseError, InterfaceError) as e:
            logger.warning("prune failed worker=%s error=%r", self.process.worker_id, e)
            return
        if any(deleted.values()):
            counts = {key.lower(): n for key, n in deleted.items()}
            logger.info("pruned %s worker=%s", fields(**counts), self.process.worker_id)
        if sum(deleted.values()) >= retention.BATCH * retention.BATCHES:
            self.next_prune = time.monotonic()
