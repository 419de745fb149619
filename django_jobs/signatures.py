"""Check at enqueue that a task's function can be called with the given arguments."""

import inspect
from functools import cache


@cache
def _signature(func) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # a callable without a readable signature: let it be
        return None


@cache
def _positional_range(func, takes_context: bool) -> tuple[int, int] | None:
    """How many positional arguments (fewest, most) a call without keywords may pass, for a
    function whose parameters are all plain positional ones; None for any other."""
    signature = _signature(func)
    if signature is None:
        return None
    parameters = list(signature.parameters.values())[1 if takes_context else 0 :]
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not all(p.kind in plain for p in parameters):
        return None
    required = sum(p.default is inspect.Parameter.empty for p in parameters)
    return required, len(parameters)


def check_call(task, args, kwargs) -> None:
    """Raise TypeError naming the task's signature if ``args``/``kwargs`` do not fit it.

    A ``takes_context`` task's first parameter is the context the worker passes, not the
    caller: it is left out of the check and of the message.
    """
    if not kwargs:
        # The usual call, f(a, b), on a plain signature: counting is the whole check.
        bounds = _positional_range(task.func, task.takes_context)
        if bounds is not None and bounds[0] <= len(args) <= bounds[1]:
            return
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
