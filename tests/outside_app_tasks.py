"""A task declared outside any installed app's tasks module (and outside the test settings'
task_modules): what a worker cannot find unless ``task_modules`` names this module. Only
tests/test_task_modules.py uses it."""

from django_jobs import task


@task()
def shout(text: str) -> str:
    return text.upper()
