"""One worker process: claim loop, heartbeats, graceful and forced stops."""

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from django.db import DatabaseError, InterfaceError, connections
from django.utils import timezone

from django_jobs import instruments, registry
from django_jobs.db.reconnect import call_reconnecting
from django_jobs.db.transient import SERVICE_ERRORS, is_transient
from django_jobs.exceptions import BrokerUnavailable, JobCancelled, JobTimeout
from django_jobs.jobs import leases, operations
from django_jobs.jobs.claims import claim_reconnecting
from django_jobs.jobs.models import Job
from django_jobs.logs import job_fields
from django_jobs.tasks_api import TaskResultStatus, task_backends
from django_jobs.worker import registration
from django_jobs.worker.completer import Completer
from django_jobs.worker.execution import Attempt, Outcome
from django_jobs.worker.heartbeat import Heartbeat
from django_jobs.worker.pool import Pool

logger = logging.getLogger(__name__)

#: Exit status asking the supervisor for a fresh process (a job thread could not be stopped).
EXIT_REPLACE = 75
#: Exit status of a worker that lost its registration (heartbeats kept failing).
EXIT_LOST = 70
#: Exit status of a worker stopped by an error retrying cannot mend (sysexits' EX_CONFIG): bad
#: SQL, a missing table or column, a task module that cannot load. The supervisor gives up.
EXIT_FATAL = 78


class WorkerProcess:
    """Claim jobs into a pool of ``concurrency`` slots until told to stop."""

    def __init__(
        self,
        backend: str = "default",
        queues: Sequence[str] = (),
        concurrency: int = 1,
        burst: bool = False,
        shutdown_timeout: float | None = None,
        processes: int = 1,
        parent_pid: int | None = None,
    ):
        self.backend = task_backends[backend]
        self.options = self.backend.jobs_options
        self.database = self.options.database
        self.queues = list(queues) or sorted(self.backend.queues)
        self.concurrency = concurrency
        self.burst = burst
        self.shutdown_timeout = (
            self.options.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
        )
        self.processes = processes
        self.parent_pid = parent_pid
        self.broker = self.backend.broker
        self.wake = threading.Event()
        self.completer = Completer(
            self.database,
            on_written=self._written,
            give_up=max(self.options.lease_seconds - self.options.heartbeat_interval, 1.0),
            on_fatal=self._fatal,
        )
        self.pool = Pool(
            concurrency,
            on_done=self._wake,
            on_outcome=self.completer.put,
            claim_ahead=self.options.claim_ahead,
        )
        self.worker_id = ""
        self.started_at: datetime | None = None
        self.stopping = threading.Event()
        #: Set once every job is finished and written: the heartbeat runs until then.
        self.finished = threading.Event()
        #: Set while lease renewals fail: claim nothing that could not be renewed.
        self.renewals_failing = threading.Event()
        self.heartbeat = Heartbeat(self)
        self.force = False
        self.exit_code = 0
        self._db_failures = 0

    def _wake(self) -> None:
        """Wake the claim loop (slots call it often: setting a set Event costs a lock)."""
        if not self.wake.is_set():
            self.wake.set()

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Register this process and start its heartbeat; call once before ``run_once``."""
        registry.autodiscover(self.options.task_modules)
        self.started_at = timezone.now()
        self.worker_id = self._register()
        logger.info(
            "worker started worker=%s pid=%s queues=%s concurrency=%s",
            self.worker_id,
            os.getpid(),
            ",".join(self.queues) or "*",
            self.concurrency,
        )
        if hasattr(self.broker, "write_note"):  # a broker with something to tell operators
            self.broker.write_note = partial(registration.set_note, self.database)
        self.broker.set_paused(operations.paused_queues(self.database))
        self.broker.listen(self.wake, self.queues)
        try:  # repair the broker now (e.g. Redis restarted empty), not a heartbeat later
            self.broker.sweep(timezone.now(), every=self.options.heartbeat_interval)
        except SERVICE_ERRORS as e:
            if not is_transient(e):
                raise
            logger.warning("sweep at start failed worker=%s error=%r", self.worker_id, e)
        self.completer.start()
        self.heartbeat.start()

    def run(self) -> int:
        """Serve jobs until stopped; return the process exit status."""
        self._install_signal_handlers()
        try:
            self.start()
        except Exception as e:
            if isinstance(e, SERVICE_ERRORS) and is_transient(e):
                raise  # the supervisor starts another process after a pause
            self._fatal("start", e)
            self.force = True  # nothing started that could be drained
            self._close()
            return self.exit_code
        try:
            while not self.stopping.is_set():
                self.wake.clear()
                room = self.pool.room()
                claimed = self.run_once(timezone.now(), room)
                if self.burst and claimed == 0 and self.pool.idle():
                    break
                if claimed < room or room <= 0:
                    self.wake.wait(self.broker.poll_interval)
                if self.parent_pid and os.getppid() != self.parent_pid:
                    logger.warning("supervisor gone, stopping worker=%s", self.worker_id)
                    self.stop()
            self._drain()
        finally:
            self._close()
        return self.exit_code

    def run_once(self, now: datetime, room: int | None = None) -> int:
        """Stop overdue jobs, give back jobs claimed ahead that waited too long, then claim
        ``room`` jobs (default: as many as there are free slots, and the claim ahead)."""
        self._enforce_timeouts()
        self._give_back(time.monotonic() - self.options.claim_ahead_hold)
        free = self.pool.room() if room is None else room
        if free <= 0 or self.stopping.is_set() or self.renewals_failing.is_set():
            return 0
        try:
            jobs = claim_reconnecting(
                self.database,
                self.worker_id,
                now,
                lambda: self.broker.claim(self.worker_id, self.queues, free, now),
            )
        except SERVICE_ERRORS as e:
            instruments.claim_failed(e)
            if not is_transient(e):
                self._fatal("claim", e)
                return 0
            self._db_failures += 1
            delay = min(0.5 * 2**self._db_failures, 5.0)
            logger.warning("claim failed error=%r; retrying in %.1fs", e, delay)
            if not isinstance(e, BrokerUnavailable):
                connections[self.database].close()
            self.stopping.wait(delay)
            self.wake.set()  # retry now: the wake-up that led here may be the only one
            return 0
        self._db_failures = 0
        instruments.jobs_started(jobs, now)
        # Slots start them in claim order (highest priority, then oldest), whatever order the
        # database handed the rows back in.
        jobs.sort(key=_claim_order)
        self.pool.submit_many([Attempt(job, self.worker_id, self.backend) for job in jobs])
        return len(jobs)

    def _give_back(self, older_than: float | None, everything: bool = False) -> None:
        """Hand back jobs claimed ahead that waited for a slot since before ``older_than``
        (behind slow jobs), or with None (a stop) all that no idle slot is about to start,
        or with ``everything`` all that no slot started: READY again, their claim undone,
        for any worker."""
        waiting = self.pool.take_waiting(older_than, everything)
        if not waiting:
            return
        jobs = [running.attempt.job for running in waiting]
        try:
            given = call_reconnecting(
                self.database,
                leases.unclaim,
                self.database,
                self.worker_id,
                [(job.pk, job.attempts) for job in jobs],
            )
        except SERVICE_ERRORS as e:  # their leases run out and they are rescued
            logger.warning("could not give back jobs worker=%s error=%r", self.worker_id, e)
            return
        logger.info("gave back %s job(s) claimed ahead worker=%s", given, self.worker_id)
        self.broker.publish(jobs)

    def _written(self, outcomes) -> None:
        self.pool.written(outcomes)
        # Retries are READY again: tell the broker now rather than at its next sweep.
        retried = [o.attempt.job for o in outcomes if o.attempt.outcome == TaskResultStatus.READY]
        retried += [job for o in outcomes for job in o.attempt.activated]  # workflow steps
        if retried:
            self.broker.publish(retried)

    def _fatal(self, statement: str, error: BaseException) -> None:
        """Stop as on SIGTERM, then exit ``EXIT_FATAL``: retrying ``error`` cannot mend it."""
        logger.error(
            "%s failed, retrying cannot mend it; stopping statement=%s worker=%s exit=%s error=%r",
            statement,
            statement,
            self.worker_id,
            EXIT_FATAL,
            error,
            exc_info=not isinstance(error, SERVICE_ERRORS),  # e.g. a task module's ImportError
        )
        self.exit_code = EXIT_FATAL
        self.stop()

    def leases_lost(self) -> None:
        """Heartbeats kept failing past the lease: stop at once, the jobs are gone."""
        self.exit_code = EXIT_LOST
        self.stop(force=True)

    def stop(self, force: bool = False) -> None:
        self.force = self.force or force
        self.stopping.set()
        self.wake.set()

    def _install_signal_handlers(self) -> None:
        def handle(signum, frame):
            force = self.stopping.is_set()
            logger.warning(
                "signal=%s %s worker=%s",
                signal.Signals(signum).name,
                "stopping now" if force else "finishing running jobs",
                self.worker_id,
            )
            self.stop(force=force)

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    # --- timeouts -------------------------------------------------------------------------
    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        for running in self.pool.interrupt_overdue(now):
            if now - running.interrupted_at < _grace(running.timeout):
                continue
            # The thread is stuck in C code: fail the job here, then replace the process.
            logger.error(
                "job thread cannot be stopped, replacing process %s",
                job_fields(running.attempt.job),
            )
            if self.pool.forget(running):
                if running.interrupt is JobCancelled:
                    error = JobCancelled("job was cancelled and its thread could not be stopped")
                else:
                    error = JobTimeout(f"job ran over its timeout of {running.timeout}s")
                self.completer.put(Outcome(running.attempt, error=error))
            self.exit_code = EXIT_REPLACE
            self.stop()

    def _register(self) -> str:
        """Write this process's Worker row: at start, or again if it was deleted (same id)."""
        return registration.register(
            self.database,
            self.backend.alias,
            self.queues,
            self.processes,
            self.concurrency,
            worker_id=self.worker_id,
            started_at=self.started_at,
            note=self.broker.note,
        )

    # --- shutdown -------------------------------------------------------------------------
    def _drain(self) -> None:
        """Give back jobs claimed ahead, let running jobs finish within the grace period,
        then hand the rest back."""
        if self.exit_code != EXIT_LOST:
            self._give_back(None)
        deadline = time.monotonic() + self.shutdown_timeout
        while not self.pool.idle() and not self.force and time.monotonic() < deadline:
            self.wake.clear()
            self._enforce_timeouts()
            self.wake.wait(min(0.5, max(deadline - time.monotonic(), 0.01)))
        if self.exit_code != EXIT_LOST:
            # The grace period is over (or a second signal cut it short): a job no slot took
            # by now will not start here, even one an idle slot was about to take.
            self._give_back(None, everything=True)
        jobs = [running.attempt.job for running in self.pool.executing()]
        if jobs and self.exit_code != EXIT_LOST:
            held = Job.objects.using(self.database).held_by(self.worker_id)
            try:
                handed = call_reconnecting(
                    self.database, held.filter(pk__in=[job.pk for job in jobs]).requeue
                )
            except SERVICE_ERRORS as e:  # their leases run out and they are rescued
                logger.warning("could not hand back jobs worker=%s error=%r", self.worker_id, e)
                return
            logger.warning("handed back %s unfinished job(s) worker=%s", handed, self.worker_id)
            self.broker.publish(jobs)

    def _close(self) -> None:
        self.stopping.set()
        self.completer.stop()
        # Outcomes already finished are written even on a forced stop (briefly: the leases
        # may be gone, and the writes are fenced anyway).
        wait = self.options.heartbeat_interval if self.force else self.options.lease_seconds
        if self.completer.thread.ident is not None:  # not when start() failed before it
            self.completer.thread.join(timeout=wait)
        self.finished.set()
        if self.heartbeat.ident is not None:
            self.heartbeat.join(timeout=self.options.heartbeat_interval)
        self.broker.close()
        self.pool.shutdown()
        try:
            call_reconnecting(
                self.database,
                registration.mark_stopped,
                self.database,
                self.worker_id,
                tries=4,
                pause=0.5,
            )
        except (DatabaseError, InterfaceError):
            logger.warning("could not mark worker stopped worker=%s", self.worker_id)
        connections.close_all()
        logger.info("worker stopped worker=%s exit=%s", self.worker_id, self.exit_code)


def _claim_order(job) -> tuple:
    return (-job.priority, job.run_after)


def _grace(timeout: float | None) -> float:
    """How long an interrupted thread gets to unwind before the process is replaced."""
    return min(5.0, max(1.0, (timeout or 0) / 2))
