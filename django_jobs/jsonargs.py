"""Check that values survive a JSON round trip unchanged, naming the first one that won't."""

import math

from .exceptions import InvalidJobArguments


def check_json(value, where: str) -> None:
    """Raise InvalidJobArguments naming ``where`` if ``value`` is not plain JSON data."""
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidJobArguments(f"{where} = {value!r}: NaN and infinity are not JSON.")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidJobArguments(
                    f"{where} has key {key!r} of type {type(key).__name__}: JSON keys are strings."
                )
            check_json(item, f"{where}[{key!r}]")
        return
    raise InvalidJobArguments(
        f"{where} = {value!r} is a {type(value).__module__}.{type(value).__qualname__}, "
        "which is not JSON; pass plain data (str, int, float, bool, None, list, dict) "
        "such as a primary key instead of an object."
    )
