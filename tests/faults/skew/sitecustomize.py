"""Loaded (via PYTHONPATH) only by fault-suite processes whose clock libfaketime shifts.

libfaketime 0.9.10 with a real monotonic clock (FAKETIME_DONT_FAKE_MONOTONIC=1, which the
suite needs: with a faked one ``threading.Event.wait`` never returns) makes the absolute
``clock_nanosleep`` behind ``time.sleep`` fail with EINVAL. Sleeping on an event instead
goes through ``pthread_cond_timedwait``, which works.
"""

import threading
import time

_never = threading.Event()


def _sleep(seconds: float) -> None:
    _never.wait(max(seconds, 0.0))


time.sleep = _sleep
