"""Check at enqueue that a task's function can be called with the given arguments."""

import inspect
from functools import cache


@cache
def _signature(func) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # a callable without a readable signature: let it be
        return None


def check_call(task, args, kwargs) -> None:
    """Raise TypeError naming the task's signature if ``args``/``kwargs`` do not fit it.

    A ``takes_context`` task's first parameter is the context the worker passes, not the
    caller: it is left out of the check and of the message.
    """
    signature = _signature(task.func)
    if signature is None:
        return
    try:
        if task.takes_context:
            signature.bind(None, *args, **kwargs)
        else:
            signature.bind(*args, **kwargs)
    except TypeError as e:
        if task.takes_context:
            signature = signature.replace(parameters=list(signature.parameters.values())[1:])
        raise TypeError(
            f"{task.module_path}{signature} cannot take {len(args)} positional argument(s) "
            f"and keyword(s) {sorted(kwargs)}: {e}."
        ) from None
