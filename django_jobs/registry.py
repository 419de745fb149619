"""Declared tasks by dotted path: the only functions a worker will call."""

import logging
from importlib import import_module

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

from django_jobs.exceptions import UnknownTask

logger = logging.getLogger(__name__)

_tasks: dict = {}


def register(task) -> None:
    """Remember a declared task under its dotted path (first declaration wins)."""
    _tasks.setdefault(task.module_path, task)


def tasks() -> list:
    """Every task declared so far."""
    return list(_tasks.values())


def declared() -> list[str]:
    """Dotted paths of every task declared so far, sorted."""
    return sorted(_tasks)


def autodiscover(extra_modules=()) -> None:
    """Import every installed app's ``tasks`` module, plus ``extra_modules``."""
    autodiscover_modules("tasks")
    if isinstance(extra_modules, str) or not isinstance(extra_modules, list | tuple):
        raise ImproperlyConfigured(
            f"task_modules must be a list of module names, not {extra_modules!r}."
        )
    for name in extra_modules:
        import_module(name)


def in_installed_app(module_name: str) -> bool:
    return any(
        module_name == config.name or module_name.startswith(config.name + ".")
        for config in apps.get_app_configs()
    )


def resolve(path: str):
    """Return the declared task at ``path`` or raise UnknownTask without calling anything.

    A module inside an installed app may be imported to find a task declared there; nothing
    that is not a declared task is ever returned, whatever the row says.
    """
    task = _tasks.get(path)
    if task is not None:
        return task
    module_name = path.rpartition(".")[0]
    if module_name and in_installed_app(module_name):
        try:
            import_module(module_name)
        except ImportError as e:
            raise UnknownTask(f"{path!r}: its module cannot be imported ({e}).") from e
        task = _tasks.get(path)
        if task is not None:
            return task
    fix = ""
    if module_name and not in_installed_app(module_name):
        fix = (
            f" If {module_name!r} declares it, add {module_name!r} to "
            "TASKS[...]['OPTIONS']['task_modules']."
        )
    raise UnknownTask(
        f"{path!r} is not a declared task in this worker: only functions decorated with @task "
        "in an installed app's module, or in a module listed in the backend's "
        f"OPTIONS['task_modules'], can run.{fix}"
    )
