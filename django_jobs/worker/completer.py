"""A thread that writes finished attempts in batches, off the job threads."""

import logging
import queue
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, DataError, IntegrityError, InterfaceError, connections
from django.utils import timezone

from django_jobs.db.transient import is_transient
from django_jobs.db.writes import serialized_writes
from django_jobs.worker.execution import Outcome
from django_jobs.worker.outcomes import record_many

logger = logging.getLogger(__name__)

BATCH = 500


class Completer:
    """Collect outcomes from job threads; write each batch, then call ``on_written``."""

    def __init__(
        self,
        database: str,
        on_written: Callable[[list[Outcome]], None],
        give_up: float,
        on_fatal: Callable[[str, BaseException], None] | None = None,
    ):
        self.database = database
        self.on_written = on_written
        self.give_up = give_up
        self.on_fatal = on_fatal
        self.queue: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.pending = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="django-jobs-completer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, outcome: Outcome) -> None:
        with self.lock:
            self.pending += 1
        self.queue.put(outcome)

    def idle(self) -> bool:
        return self.pending == 0

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        while not (self.stopped.is_set() and self.idle()):
            try:
                batch = [self.queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)
            with self.lock:
                self.pending -= len(batch)
            self.on_written(batch)
        connections[self.database].close()

    def _write(self, batch: list[Outcome]) -> None:
        """Write a batch, riding out database trouble; after ``give_up`` s leases are gone.

        Always a durable commit (never ``relaxed_commits``): an outcome lost in a database
        crash would leave a job that ran to be rescued as failed (or run again).
        """
        deadline = time.monotonic() + self.give_up
        delay = 0.2
        while True:
            try:
                with serialized_writes(self.database):
                    record_many(batch, self.database, timezone.now())
                return
            except (DatabaseError, InterfaceError) as e:
                connections[self.database].close()
                if not is_transient(e):
                    self._unmendable(batch, e)
                    return
                if time.monotonic() > deadline:
                    logger.error("dropping %s outcome(s) after error=%r", len(batch), e)
                    return
                logger.warning("writing %s outcome(s) failed error=%r", len(batch), e)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _unmendable(self, batch: list[Outcome], error: BaseException) -> None:
        """A write retrying cannot mend: bad data stops one outcome, anything else the worker."""
        if not isinstance(error, DataError | IntegrityError):  # bad SQL, schema mismatch
            if self.on_fatal is not None:
                self.on_fatal("complete", error)
            return
        if len(batch) > 1:  # find the outcome(s) the database refuses; write the others
            for outcome in batch:
                self._write([outcome])
            return
        outcome = batch[0]
        if not isinstance(outcome.error, DataError | IntegrityError):
            # The refusal is this attempt's failure: it ends FAILED now (not retried: the same
            # value would be refused again), instead of waiting RUNNING for its lease to expire.
            logger.error(
                "complete failed, the database refuses this outcome; recording the refusal as "
                "the job's failure job_id=%s error=%r",
                outcome.attempt.job.pk,
                error,
            )
            self._write([Outcome(outcome.attempt, error=error, retry=False)])
            return
        # Even the refusal cannot be written: left RUNNING, rescued after its lease.
        logger.error(
            "complete failed, the database refuses this outcome; dropping it job_id=%s error=%r",
            outcome.attempt.job.pk,
            error,
        )
