"""Check that values survive a JSON round trip unchanged, naming the first one that won't."""

import math

from django_jobs.exceptions import InvalidJobArguments


def check_json(value, where: str, error: type[Exception] = InvalidJobArguments) -> None:
    """Raise ``error`` (InvalidJobArguments) naming ``where`` if ``value`` is not plain JSON."""
    if not _plain(value):
        _check(value, where, error)  # walk again, naming what is wrong


def _plain(value) -> bool:
    """Whether ``value`` is plain JSON (``_check``'s rules, without building any names)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list or kind is tuple:
        return all(map(_plain, value))
    if kind is dict:
        return all(type(key) is str for key in value) and all(map(_plain, value.values()))
    return False  # subclasses, anything else: let ``_check`` decide


def _check(value, where: str, error: type[Exception]) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise error(f"{where} = {value!r}: NaN and infinity are not JSON.")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]", error)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(
                    f"{where} has key {key!r} of type {type(key).__name__}: JSON keys are strings."
                )
            _check(item, f"{where}[{key!r}]", error)
        return
    raise error(
        f"{where} = {value!r} is a {type(value).__module__}.{type(value).__qualname__}, "
        "which is not JSON; pass plain data (str, int, float, bool, None, list, dict) "
        "such as a primary key instead of an object."
    )
