"""Run claimed jobs on threads (sync tasks) or an event loop (async tasks), with deadlines."""

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from inspect import iscoroutinefunction

from django.db import close_old_connections

from django_jobs.exceptions import JobCancelled, JobTimeout
from django_jobs.logs import job_fields
from django_jobs.worker.execution import Attempt, Outcome, execute
from django_jobs.worker.interrupt import raise_in_thread

logger = logging.getLogger(__name__)


@dataclass
class Running:
    """A job on a thread of this process."""

    attempt: Attempt
    started: float = field(default_factory=time.monotonic)
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


def attempt_key(attempt: Attempt) -> tuple[str, int]:
    """What identifies one attempt of one job."""
    return (str(attempt.job.pk), attempt.job.attempts)


class Pool:
    """``concurrency`` slots; async tasks share one event loop thread.

    A slot is taken while a job's code runs; the job stays *unfinished* (its lease renewed)
    until the completer has written its outcome.
    """

    def __init__(
        self,
        concurrency: int,
        on_done: Callable[[], None],
        on_outcome: Callable[[Outcome], None],
    ):
        self.concurrency = concurrency
        self.on_done = on_done
        self.on_outcome = on_outcome
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
        self.unfinished: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def free_slots(self) -> int:
        return self.concurrency - len(self.running)

    def idle(self) -> bool:
        return not self.unfinished

    def running_ids(self) -> list[str]:
        """Jobs this process still owns: running, or finished but not yet written."""
        with self.lock:
            return list({pk for pk, _ in self.unfinished})

    def executing(self) -> list[Running]:
        """The attempts whose code is still running."""
        with self.lock:
            return list(self.running.values())

    def submit(self, attempt: Attempt) -> None:
        running = Running(attempt)
        with self.lock:
            self.running[attempt_key(attempt)] = running
            self.unfinished.add(attempt_key(attempt))
        self.inbox.put(running)

    def written(self, outcomes: list[Outcome]) -> None:
        """The completer wrote these outcomes: those attempts are no longer ours."""
        with self.lock:
            self.unfinished.difference_update(attempt_key(o.attempt) for o in outcomes)
        self.on_done()

    def _serve(self) -> None:
        while (running := self.inbox.get()) is not None:
            self._run(running)

    def _run(self, running: Running) -> None:
        running.thread_id = threading.get_ident()
        try:
            try:
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
        with self.lock:
            mine = self.running.get(key) is running
            if mine:
                del self.running[key]
        self.on_done()
        return mine

    def _call(self, running: Running, task, args, kwargs):
        if iscoroutinefunction(task.func):
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
        """Tell running jobs they are cancelled; past their ``cancel_grace`` they are stopped."""
        wanted = {str(pk) for pk in ids}
        with self.lock:
            for (pk, _), running in self.running.items():
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
