"""Run claimed jobs on threads (sync tasks) or an event loop (async tasks), with deadlines."""

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from inspect import iscoroutinefunction

from django.db import close_old_connections

from django_jobs.exceptions import JobCancelled, JobTimeout
from django_jobs.logs import job_fields
from django_jobs.worker.execution import Attempt, Outcome, execute
from django_jobs.worker.interrupt import raise_in_thread

logger = logging.getLogger(__name__)

#: Seconds of work a worker claims ahead for its slots, at most (``Pool.room``).
AHEAD_WINDOW = 0.1


@dataclass
class Running:
    """A job of this process: claimed (perhaps ahead, waiting for a slot), then running."""

    attempt: Attempt
    #: When it was handed to the pool (claimed); ``started`` once a slot takes it.
    claimed: float = field(default_factory=time.monotonic)
    started: float = 0.0
    thread_id: int | None = None
    calling: bool = False
    is_async: bool = False
    interrupted_at: float | None = None
    #: What was raised into the thread (JobTimeout or JobCancelled).
    interrupt: type[BaseException] | None = None
    #: When a cancelled job is interrupted unless it has stopped by itself.
    cancel_at: float | None = None
    future: concurrent.futures.Future | None = None

    @property
    def timeout(self) -> float | None:
        return self.attempt.job.timeout

    def overdue(self, now: float) -> bool:
        return self.timeout is not None and now - self.started > self.timeout

    def due(self, now: float) -> type[BaseException] | None:
        """The exception that must stop this job now, if any."""
        if self.overdue(now):
            return JobTimeout
        if self.cancel_at is not None and now >= self.cancel_at:
            return JobCancelled
        return None


class _Escaped(Exception):  # noqa: N818  (a carrier, not an error of its own)
    """Carries a task's SystemExit or KeyboardInterrupt out of the event loop."""

    def __init__(self, error: BaseException):
        super().__init__(repr(error))
        self.error = error


async def _contained(coroutine):
    # asyncio re-raises SystemExit and KeyboardInterrupt out of the loop itself, which would
    # end the loop thread every async job shares: hand them back to the job's thread instead.
    # GeneratorExit is left alone: a task raising it fails like any error (asyncio keeps it
    # in the future), and it is also how a coroutine is closed, which must not be caught.
    try:
        return await coroutine
    except (SystemExit, KeyboardInterrupt) as e:
        raise _Escaped(e) from None


def _is_async(func) -> bool:
    """``iscoroutinefunction``, worked out once per task function."""
    known = _ASYNC.get(func)
    if known is None:
        known = _ASYNC[func] = iscoroutinefunction(func)
    return known


_ASYNC: "weakref.WeakKeyDictionary[object, bool]" = weakref.WeakKeyDictionary()


def attempt_key(attempt: Attempt) -> tuple[str, int]:
    """What identifies one attempt of one job (worked out once per attempt)."""
    key = attempt.__dict__.get("_key")
    if key is None:
        key = attempt.__dict__["_key"] = (str(attempt.job.pk), attempt.job.attempts)
    return key


class Pool:
    """``concurrency`` slots; async tasks share one event loop thread.

    Jobs may be claimed ahead (``claim_ahead``): they wait in the inbox, RUNNING and leased
    for this worker, and the next free slot takes the oldest without a round trip to the
    database. A slot is taken while a job's code runs; the job stays *unfinished* (its lease
    renewed) until the completer has written its outcome.
    """

    def __init__(
        self,
        concurrency: int,
        on_done: Callable[[], None],
        on_outcome: Callable[[Outcome], None],
        claim_ahead: int = 0,
    ):
        self.concurrency = concurrency
        self.on_done = on_done
        self.on_outcome = on_outcome
        #: Most jobs claimed ahead, beyond the free slots.
        self.claim_ahead = claim_ahead
        # Plain threads on a C queue: a job hand-off costs a put and a get, nothing more.
        self.inbox: queue.SimpleQueue[Running | None] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._serve, name=f"django-jobs-{n}", daemon=True)
            for n in range(concurrency)
        ]
        for thread in self.threads:
            thread.start()
        # Keyed by (job, attempt), not by job: a job retried at once may be claimed again by
        # this process before the completer confirms its previous attempt's outcome, and that
        # late confirmation must not make the new attempt look finished (its lease unrenewed).
        self.running: dict[tuple[str, int], Running] = {}
        #: Claimed ahead, not started yet, oldest first.
        self.waiting: dict[tuple[str, int], Running] = {}
        self.unfinished: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Recent jobs' run time (seconds, a moving average; None before the first ends).
        self._run_seconds: float | None = None
        #: Wake the claim loop once this few jobs wait (half of the last claim ahead).
        self._low_water = 0

    def free_slots(self) -> int:
        """Slots no job holds, running or waiting for one."""
        return self.concurrency - len(self.running) - len(self.waiting)

    def room(self) -> int:
        """How many jobs to claim now: the free slots, plus as many more as the slots would
        start within ``AHEAD_WINDOW`` seconds at the recent jobs' run time, or the time of the
        longest one running now (at most ``claim_ahead``). Slow jobs are not claimed ahead:
        they would only wait."""
        now = time.monotonic()
        with self.lock:
            ahead = 0
            if self.claim_ahead > 0 and self._run_seconds is not None:
                # A job running long now counts as well as the ones that ended.
                longest = max((now - r.started for r in self.running.values()), default=0.0)
                per_slot = AHEAD_WINDOW / max(self._run_seconds, longest, 1e-6)
                ahead = min(self.claim_ahead, int(self.concurrency * per_slot))
            self._low_water = ahead // 2
            return self.concurrency + ahead - len(self.running) - len(self.waiting)

    def idle(self) -> bool:
        return not self.unfinished

    def running_ids(self) -> list[str]:
        """Jobs this process still owns: waiting, running, or finished but not yet written."""
        with self.lock:
            return list({pk for pk, _ in self.unfinished})

    def executing(self) -> list[Running]:
        """The attempts whose code is still running."""
        with self.lock:
            return list(self.running.values())

    def submit(self, attempt: Attempt) -> None:
        self.submit_many([attempt])

    def submit_many(self, attempts: list[Attempt]) -> None:
        """Hand claimed attempts to the slots (in claim order)."""
        items = [Running(attempt) for attempt in attempts]
        with self.lock:
            for running in items:
                key = attempt_key(running.attempt)
                self.waiting[key] = running
                self.unfinished.add(key)
        for running in items:
            self.inbox.put(running)

    def take_waiting(self, older_than: float | None = None, everything: bool = False):
        """Take back jobs claimed ahead that no slot started (those waiting since before
        ``older_than``; with None, all that no idle slot is about to take; with
        ``everything``, all): no slot will start them; the caller hands them back."""
        with self.lock:
            waiting = list(self.waiting.values())  # oldest first, as the slots take them
            if everything:
                taken = waiting
            elif older_than is None:
                taken = waiting[max(self.concurrency - len(self.running), 0) :]
            else:
                taken = [running for running in waiting if running.claimed < older_than]
            for running in taken:
                key = attempt_key(running.attempt)
                del self.waiting[key]
                self.unfinished.discard(key)
        return taken

    def written(self, outcomes: list[Outcome]) -> None:
        """The completer wrote these outcomes: those attempts are no longer ours."""
        with self.lock:
            self.unfinished.difference_update(attempt_key(o.attempt) for o in outcomes)
        self.on_done()

    def _serve(self) -> None:
        while (running := self.inbox.get()) is not None:
            if self._start(running):
                self._run(running)

    def _start(self, running: Running) -> bool:
        """Move a waiting job to a slot; False if it was taken back meanwhile."""
        key = attempt_key(running.attempt)
        with self.lock:
            if self.waiting.pop(key, None) is not running:
                return False
            running.started = time.monotonic()
            running.thread_id = threading.get_ident()
            self.running[key] = running
            wake = len(self.waiting) <= self._low_water
        if wake:
            self.on_done()  # claim the next ones before the slots run dry
        return True

    def _run(self, running: Running) -> None:
        try:
            try:
                if running.attempt.cancelled.is_set():  # cancelled while it waited
                    error = JobCancelled(f"job {running.attempt.job.pk} was cancelled")
                    outcome = Outcome(running.attempt, error=error, retry=False)
                else:
                    call = lambda task, a, kw: self._call(running, task, a, kw)  # noqa: E731
                    outcome = execute(running.attempt, call)
            except BaseException as e:  # a signal receiver raised: still the job's outcome
                logger.exception("job crashed its thread %s", job_fields(running.attempt.job))
                outcome = Outcome(running.attempt, error=e, retry=False)
            if self.forget(running):
                self.on_outcome(outcome)
        finally:
            close_old_connections()  # the task's own connections, as after a request

    def forget(self, running: Running) -> bool:
        """Free the job's slot; False if the job was already given up (timed out)."""
        key = attempt_key(running.attempt)
        seconds = time.monotonic() - running.started
        with self.lock:
            mine = self.running.get(key) is running
            if mine:
                del self.running[key]
            last = self._run_seconds
            self._run_seconds = seconds if last is None else last + (seconds - last) * 0.2
            wake = len(self.waiting) <= self._low_water
        if wake:
            self.on_done()
        return mine

    def _call(self, running: Running, task, args, kwargs):
        if _is_async(task.func):
            running.is_async = True
            return self._call_async(running, task.func(*args, **kwargs))
        with self.lock:
            running.calling = True
        try:
            return task.func(*args, **kwargs)
        finally:
            with self.lock:  # after this, no timeout can be raised into this thread
                running.calling = False

    def _call_async(self, running: Running, coroutine):
        coroutine = _contained(coroutine)
        if running.timeout is not None:
            coroutine = asyncio.wait_for(coroutine, running.timeout)
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        running.future = future
        try:
            return future.result()
        except TimeoutError as e:
            raise JobTimeout(f"job ran over its timeout of {running.timeout}s") from e
        except concurrent.futures.CancelledError as e:
            raise JobCancelled(f"job {running.attempt.job.pk} was cancelled") from e
        except _Escaped as e:
            raise e.error from None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=self._loop.run_forever, name="django-jobs-loop", daemon=True
                ).start()
            return self._loop

    def request_cancel(self, ids, now: float) -> None:
        """Tell running jobs they are cancelled; past their ``cancel_grace`` they are stopped.

        A job still waiting for a slot is not started: its slot records it cancelled.
        """
        wanted = {str(pk) for pk in ids}
        with self.lock:
            for (pk, _), running in [*self.running.items(), *self.waiting.items()]:
                if pk not in wanted or running.cancel_at is not None:
                    continue
                running.attempt.cancelled.set()
                running.cancel_at = now + getattr(running.attempt.task, "cancel_grace", 10.0)
                logger.info("job cancellation requested %s", job_fields(running.attempt.job))

    def interrupt_overdue(self, now: float) -> list[Running]:
        """Stop jobs past their deadline or cancel grace; return the ones already told.

        Sync jobs get the exception raised in their thread; async ones have their future
        cancelled (a timeout is ``asyncio.wait_for``'s job).
        """
        stuck = []
        with self.lock:
            for running in self.running.values():
                error = running.due(now)
                if error is None:
                    continue
                if running.is_async:
                    if error is JobCancelled and running.future is not None:
                        running.future.cancel()
                    continue
                if running.interrupted_at is not None:
                    stuck.append(running)
                elif running.calling and running.thread_id is not None:
                    running.interrupted_at = now
                    running.interrupt = error
                    raise_in_thread(running.thread_id, error)
                    logger.warning(
                        "interrupting %s with %s timeout=%s",
                        job_fields(running.attempt.job),
                        error.__name__,
                        running.timeout,
                    )
        return stuck

    def shutdown(self) -> None:
        for _ in self.threads:
            self.inbox.put(None)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
