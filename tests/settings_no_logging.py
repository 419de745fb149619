"""The test project's settings without its LOGGING: a project fresh from ``startproject``,
where Django's default logging has no handler for ``django_jobs``."""

from testproject.settings import *  # noqa: F403

del LOGGING  # noqa: F821
