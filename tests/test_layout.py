"""The layout's rules (docs/architecture.md): one writer of job status, arrows only downward."""

from pathlib import Path

import pytest

from tests.layout_rules import imported_modules, modules, status_writes

PACKAGE = Path(__file__).resolve().parent.parent / "django_jobs"
JOBS = PACKAGE / "jobs"

#: Package → the packages of django_jobs it must never import (they sit above it).
#: ``testing`` (helpers for users' suites) is at the top beside ``management``: none imports it.
FORBIDDEN = {
    "db": ("jobs", "brokers", "worker", "beat", "console", "admin", "management", "backend"),
    "jobs": ("brokers", "worker", "beat", "console", "admin", "management", "backend"),
    "brokers": ("worker", "beat", "console", "admin", "management", "backend"),
    "worker": ("beat", "console", "admin", "management"),
    "beat": ("worker", "console", "admin", "management"),
    "console": ("admin", "management"),
    "admin": ("management",),
}
FORBIDDEN = {package: (*above, "testing") for package, above in FORBIDDEN.items()}


def test_only_the_jobs_package_writes_job_status():
    # Given every module of the app outside jobs/
    outside = [path for path in modules(PACKAGE) if JOBS not in path.parents]
    # When each is searched for updates, saves, assignments or SQL that set a status
    writes = {
        str(path.relative_to(PACKAGE)): found for path in outside if (found := status_writes(path))
    }
    # Then there are none: every status change goes through jobs.transitions
    assert writes == {}


def test_the_rule_finds_each_way_of_writing_status(tmp_path):
    # Given a module writing status in each of the ways the rule looks for
    source = tmp_path / "writer.py"
    source.write_text(
        "def f(jobs, job):\n"
        "    jobs.filter(pk=1).update(status='READY')\n"
        "    job.status = 'FAILED'\n"
        "    job.save(update_fields=['status'])\n"
        "    sql = \"UPDATE django_jobs_job SET status = 'RUNNING' WHERE id = %s\"\n"
        "    values = {'status': 'READY'}\n"
    )
    # Then each one is found (a rule that finds nothing would pass on any code)
    assert [line for line, _ in sorted(status_writes(source))] == [2, 3, 4, 5, 6]


def test_the_job_transitions_are_found_inside_jobs():
    # The rule is not blind to the package it exempts: the transitions module is full of writes
    assert len(status_writes(JOBS / "transitions.py")) >= 8


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_downward(package):
    # Given a package of the app and the packages above it
    above = {f"django_jobs.{name}" for name in FORBIDDEN[package]}
    # When its modules' imports are read
    upward = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in imported_modules(path) if name.split(".")[:2] in _prefixes(above)
        )
        for path in modules(PACKAGE / package)
    }
    # Then none reaches up
    assert {module: names for module, names in upward.items() if names} == {}


def test_neither_broker_imports_the_other():
    database = imported_modules(PACKAGE / "brokers" / "database.py")
    redis = set().union(*(imported_modules(p) for p in modules(PACKAGE / "brokers" / "redis")))
    assert not any(name.startswith("django_jobs.brokers.redis") for name in database)
    assert not any(name.startswith("django_jobs.brokers.database") for name in redis)


def _prefixes(names: set[str]) -> list[list[str]]:
    return [name.split(".")[:2] for name in names]
