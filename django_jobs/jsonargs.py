"""Check that values survive a JSON round trip unchanged, naming the first one that won't."""

import math

from django_jobs.exceptions import InvalidJobArguments


def check_json(value, where: str, error: type[Exception] = InvalidJobArguments) -> None:
    """Raise ``error`` (InvalidJobArguments) naming ``where`` if ``value`` is not plain JSON."""
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
            check_json(item, f"{where}[{index}]", error)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(
                    f"{where} has key {key!r} of type {type(key).__name__}: JSON keys are strings."
                )
            check_json(item, f"{where}[{key!r}]", error)
        return
    raise error(
        f"{where} = {value!r} is a {type(value).__module__}.{type(value).__qualname__}, "
        "which is not JSON; pass plain data (str, int, float, bool, None, list, dict) "
        "such as a primary key instead of an object."
    )
