"""System check W020: declared tasks that a worker will not find.

A worker imports every installed app's ``tasks`` module and the backend's ``task_modules``,
and imports a job's module on demand only inside an installed app. A task declared anywhere
else (a project package that is no app, a script) enqueues fine and then fails in the worker.
It is a Warning, not an Error: a tasks module may import such a module itself, which the
check cannot see; silence it then, or better, list the module in ``task_modules``.
"""

from django.core import checks


def unreachable(task, task_modules) -> bool:
    """Whether a worker of a backend with ``task_modules`` cannot find ``task`` by its path."""
    from django_jobs import registry

    module = task.func.__module__
    return not registry.in_installed_app(module) and module not in task_modules


@checks.register()
def check_task_modules(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Warn once per module whose declared tasks a worker cannot import."""
    from django_jobs import registry
    from django_jobs.backend import JobsBackend
    from django_jobs.beat.sync import discover_tasks
    from django_jobs.tasks_api import InvalidTaskBackend, task_backends

    discover_tasks()
    found: dict[tuple[str, str], list[str]] = {}
    for task in registry.tasks():
        try:
            backend = task_backends[task.backend]
        except InvalidTaskBackend:
            continue  # Django's own checks report an unknown backend
        modules = backend.jobs_options.task_modules if isinstance(backend, JobsBackend) else None
        if isinstance(modules, tuple) and unreachable(task, modules):
            found.setdefault((task.func.__module__, task.backend), []).append(task.name)
    return [
        checks.Warning(
            f"Task(s) {', '.join(sorted(names))} in module {module!r} are neither in an installed "
            f"app nor in TASKS[{alias!r}]['OPTIONS']['task_modules']: a worker will not find "
            "them, and their jobs will fail.",
            hint=f"Add {module!r} to TASKS[{alias!r}]['OPTIONS']['task_modules'], or move the "
            "tasks into an installed app's tasks.py.",
            id="django_jobs.W020",
        )
        for (module, alias), names in sorted(found.items())
    ]
