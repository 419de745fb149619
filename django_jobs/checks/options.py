"""Type and range checks of a JobsBackend's OPTIONS values (system check E020, E021).

Each rule says what a key takes; a value that breaks it gets one error naming the key, the
value and what to write instead. Nothing here raises, whatever the values are.
"""

from collections.abc import Callable
from importlib.util import find_spec

from django.core import checks

Rule = tuple[Callable[[object], bool], str]


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _positive(value) -> bool:
    return _number(value) and 0 < value < float("inf")


def _non_negative(value) -> bool:
    return _number(value) and 0 <= value < float("inf")


def _text(value) -> bool:
    return isinstance(value, str) and value != ""


def _module_list(value) -> bool:
    return isinstance(value, list | tuple) and all(_text(name) for name in value)


def _retention(value) -> bool:
    return isinstance(value, dict) and all(
        key in ("SUCCESSFUL", "FAILED", "CANCELLED") and (days is None or _non_negative(days))
        for key, days in value.items()
    )


#: key -> (accepts the value, what it takes). Keys not here are unknown (E001).
RULES: dict[str, Rule] = {
    "broker": (_text, 'a string: "database" or "redis"'),
    "database": (_text, 'a DATABASES alias (string), e.g. "default"'),
    "redis_url": (
        lambda v: v is None or _text(v),
        'a Redis URL string, e.g. "redis://host:6379/0"',
    ),
    "redis_prefix": (_text, 'a non-empty string, e.g. "django_jobs"'),
    "lease_seconds": (_positive, "a number of seconds > 0, e.g. 60"),
    "heartbeat_interval": (_positive, "a number of seconds > 0, e.g. 10"),
    "poll_interval": (lambda v: v is None or _positive(v), "None or a number of seconds > 0"),
    "shutdown_timeout": (_non_negative, "a number of seconds >= 0, e.g. 30"),
    "default_max_attempts": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "a whole number >= 1 (1: no retries)",
    ),
    "claim_ahead": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10_000,
        "a whole number from 0 (claim for free slots only) to 10000, e.g. 50",
    ),
    "claim_ahead_hold": (_positive, "a number of seconds > 0, e.g. 1"),
    "relaxed_commits": (lambda v: isinstance(v, bool), "True or False"),
    "listen": (lambda v: isinstance(v, bool), "True or False"),
    "task_modules": (_module_list, 'a list of module names, e.g. ["mysite.jobs"]'),
    "metrics_token": (
        lambda v: v is None or (isinstance(v, str) and len(v) >= 16),
        "None or a secret string of at least 16 characters",
    ),
    "retention": (
        _retention,
        'a dict of days per finished status (None: forever), e.g. {"SUCCESSFUL": 7, '
        '"FAILED": 30, "CANCELLED": 7}',
    ),
    "prune_interval": (lambda v: v is None or _positive(v), "None or a number of seconds > 0"),
    "history_retention": (
        lambda v: v is None or (_number(v) and 1 <= v < float("inf")),
        "None or a number of days >= 1 (the dashboard shows the last day)",
    ),
}


def check_option_values(options, where: str) -> list[checks.CheckMessage]:
    """One error per OPTIONS value of the wrong type or out of range (E020), and per
    ``task_modules`` entry that cannot be imported (E021)."""
    if not isinstance(options, dict):
        return [
            checks.Error(
                f"{where} is a {type(options).__name__}, not a dict.",
                hint='Write OPTIONS as a dict, e.g. {"broker": "database"}.',
                id="django_jobs.E020",
            )
        ]
    errors = [
        checks.Error(
            f"{where}[{key!r}] is {options[key]!r} ({type(options[key]).__name__}).",
            hint=f"{key} takes {takes}.",
            id="django_jobs.E020",
        )
        for key, (accepts, takes) in RULES.items()
        if key in options and not accepts(options[key])
    ]
    modules = options.get("task_modules", ())
    if _module_list(modules):
        errors += [_unimportable(name, where) for name in modules if not _importable(name)]
    return errors


def valid(options, key: str) -> bool:
    """Whether ``options[key]`` (or its default, when absent) passes its rule."""
    if not isinstance(options, dict) or key not in options:
        return True
    return RULES[key][0](options[key])


def _importable(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except Exception:  # noqa: BLE001  (a parent package that fails to import: any error)
        return False


def _unimportable(name: str, where: str) -> checks.CheckMessage:
    return checks.Error(
        f"{where}['task_modules'] names {name!r}, which cannot be imported.",
        hint="Use the dotted name of a module on the Python path, e.g. 'mysite.jobs'.",
        id="django_jobs.E021",
    )
