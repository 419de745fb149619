"""Dispatch straight from the job table: the row is the message.

Claims are ``jobs.claims`` (one round trip on PostgreSQL, SKIP LOCKED elsewhere). PostgreSQL
wakes workers with LISTEN/NOTIFY (a trigger notifies on every READY row); other databases poll.
"""

import logging
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime

from django.db import connections

from django_jobs.brokers.gated import GatedClaims
from django_jobs.conf import JobsOptions
from django_jobs.jobs import claims

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "django_jobs"


class DatabaseBroker:
    """Claim jobs from the database; wake on PostgreSQL notifications, else poll."""

    note = ""

    def __init__(self, options: JobsOptions, alias: str = "default"):
        self.options = options
        self.alias = alias
        self.database = options.database
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()
        #: Paused queue names, refreshed by the worker's heartbeat: no query per claim.
        self.paused: frozenset[str] = frozenset()
        vendor = connections[self.database].vendor
        #: How long the worker may sleep when no NOTIFY wakes it.
        self.poll_interval = options.poll_interval_for(vendor, pushed=False)
        self.gated = GatedClaims(self.database, alias, self.poll_interval)
        self._idle = False
        #: SQLite: an idle worker looks (a read) before it takes the write lock.
        self._looks_first = vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)

    def publish(self, jobs: Sequence) -> None:
        """Nothing to do: the row is the message (PostgreSQL's trigger notifies on commit)."""

    def set_paused(self, queues: frozenset[str]) -> None:
        self.paused = frozenset(queues)

    def claim(self, worker_id: str, queues: Sequence[str], limit: int, now: datetime) -> list:
        if queues and self.paused:
            queues = [queue for queue in queues if queue not in self.paused]
            if not queues:
                return []
        # An idle SQLite worker looks before it takes the database's one write lock.
        if self._idle and not self._ready(queues, now).exists():
            jobs = []
        else:
            jobs = claims.claim_ready(
                self.database,
                self.alias,
                queues,
                self.paused,
                worker_id,
                limit,
                now,
                self.options.lease,
                relaxed=self.options.relaxed_commits,
                prepare=self.options.listen,
            )
        self._idle = self._looks_first and not jobs
        # Jobs of tasks with limits are claimed apart: see ``jobs.limits``.
        return self.gated.top_up(
            jobs, worker_id, queues, self.paused, limit, now, self.options.lease
        )

    def _ready(self, queues: Sequence[str], now: datetime):
        return claims.ready(self.database, self.alias, queues, self.paused, now)

    def sweep(self, now: datetime, every: float | None = None) -> int:
        """Nothing to reconcile: the table is the queue."""
        return 0

    def listen(self, wake: threading.Event, queues: Sequence[str] = ()) -> None:
        if connections[self.database].vendor != "postgresql" or self._listener:
            return
        if not self.options.listen:
            return  # behind a transaction-mode pooler: LISTEN would leak onto shared sessions
        self._listener = threading.Thread(
            target=self._listen, args=(wake,), name="django-jobs-listen", daemon=True
        )
        self._listener.start()

    def _listen(self, wake: threading.Event) -> None:
        import psycopg

        params = _psycopg_params(self.database)
        while not self._closed.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    wake.set()  # anything enqueued while we were not listening
                    while not self._closed.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            wake.set()
            except psycopg.Error as e:
                logger.warning("LISTEN connection lost error=%r; reconnecting", e)
                self._closed.wait(1.0)

    def close(self) -> None:
        self._closed.set()


def _psycopg_params(alias: str) -> dict:
    params = connections[alias].get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding"):
        params.pop(key, None)
    return params
