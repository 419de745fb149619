"""Fixtures of the fault suite."""

import pytest

from tests.faults.harness import Fleet


@pytest.fixture
def fleet(transactional_db, tmp_path):
    """Real processes on the test database, all killed at teardown."""
    processes = Fleet(tmp_path)
    yield processes
    processes.close()
