"""Keep N worker processes (and an optional beat) alive: fork them, relay signals, replace
the ones that die, and give up when one stops on an error retrying cannot mend."""

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence

from django.db import connections

from django_jobs import tracing
from django_jobs.worker.process import EXIT_FATAL

logger = logging.getLogger(__name__)

#: A child that dies sooner than this after starting is restarted after a pause.
QUICK_DEATH = 2.0
#: The signals the supervisor passes on to its children.
RELAYED = {signal.SIGTERM, signal.SIGINT}


class Supervisor:
    """Fork ``processes`` children each running ``child()``, plus one child per ``extras``
    callable (the beat); restart them until stopped."""

    def __init__(
        self,
        processes: int,
        child: Callable[[int], int],
        burst: bool = False,
        extras: Sequence[Callable[[int], int]] = (),
    ):
        self.processes = processes
        self.child = child
        self.burst = burst
        self.extras = list(extras)
        self.children: dict[int, tuple[float, Callable[[int], int]]] = {}
        self.signals: list[int] = []
        self.exit_code = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for target in [self.child] * self.processes + self.extras:
            self._spawn(target)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            entry = self.children.pop(pid, None)
            if entry is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            self._on_exit(pid, code, *entry)
        return self.exit_code

    def _on_exit(self, pid: int, code: int, started: float, target: Callable) -> None:
        if code == EXIT_FATAL:
            self._give_up(pid, code)
            return
        if self.signals:
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                self.exit_code = self.exit_code or 1
            return
        if self.burst and code == 0:
            return
        logger.warning("worker process exited pid=%s code=%s; starting another", pid, code)
        if time.monotonic() - started < QUICK_DEATH:
            time.sleep(QUICK_DEATH)
        if not self.signals:
            self._spawn(target)

    def _give_up(self, pid: int, code: int) -> None:
        """A replacement would fail the same way: stop the others, and exit with ``code``."""
        self.exit_code = code
        if self.signals:
            return
        logger.error(
            "worker process stopped on an error retrying cannot mend pid=%s code=%s; "
            "stopping the other processes, not replacing it",
            pid,
            code,
        )
        self._on_signal(signal.SIGTERM, None)

    def _spawn(self, target: Callable[[int], int]) -> None:
        connections.close_all()  # a forked child must not share the parent's sockets
        parent = os.getpid()
        # A signal arriving between fork() and recording the child would be relayed to every
        # child but this one: hold it until the child is recorded (the child unblocks too).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED)
        try:
            pid = os.fork()
            if pid == 0:
                _child(target, parent, mask)
            self.children[pid] = (time.monotonic(), target)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _on_signal(self, signum, frame) -> None:
        self.signals.append(signum)
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


def _child(target: Callable[[int], int], parent: int, mask) -> None:
    """Run ``target`` in a freshly forked child, then exit with its status (never returns)."""
    code = 1
    try:
        os.setpgid(0, 0)  # the terminal's Ctrl-C reaches the supervisor only
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        code = target(parent)
    except BaseException:
        logger.exception("worker process crashed")
    finally:
        tracing.flush()  # os._exit skips the tracer provider's own flush at exit
        logging.shutdown()
        os._exit(code)
