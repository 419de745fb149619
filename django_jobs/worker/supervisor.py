"""Keep N worker processes alive: fork them, relay signals, replace the ones that die."""

import logging
import os
import signal
import time
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)

#: A child that dies sooner than this after starting is restarted after a pause.
QUICK_DEATH = 2.0


class Supervisor:
    """Fork ``processes`` children each running ``child()``; restart them until stopped."""

    def __init__(self, processes: int, child: Callable[[int], int], burst: bool = False):
        self.processes = processes
        self.child = child
        self.burst = burst
        self.children: dict[int, float] = {}
        self.signals: list[int] = []
        self.exit_code = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for _ in range(self.processes):
            self._spawn()
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            started = self.children.pop(pid, None)
            if started is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            self._on_exit(pid, code, started)
        return self.exit_code

    def _on_exit(self, pid: int, code: int, started: float) -> None:
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
            self._spawn()

    def _spawn(self) -> None:
        connections.close_all()  # a forked child must not share the parent's sockets
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setpgid(0, 0)  # the terminal's Ctrl-C reaches the supervisor only
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = self.child(parent)
            except BaseException:
                logger.exception("worker process crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()

    def _on_signal(self, signum, frame) -> None:
        self.signals.append(signum)
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
