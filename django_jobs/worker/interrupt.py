"""Raise an exception inside another thread (how a sync job over its timeout is stopped)."""

import ctypes


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Ask ``thread_id`` to raise ``exc_type`` at its next Python instruction.

    A thread blocked in C (a long ``time.sleep``, a socket read) only sees it when the call
    returns; the worker replaces its process when that takes too long.
    """
    changed = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )
    if changed > 1:  # never expected: undo rather than hit several threads
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        return False
    return changed == 1
