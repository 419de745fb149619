"""Which database errors a worker retries, and which stop it (on the real database)."""

import pytest
from django.db import connection

from django_jobs.db.transient import is_transient
from django_jobs.exceptions import BrokerUnavailable


def _error_of(sql: str) -> BaseException:
    with pytest.raises(Exception) as caught, connection.cursor() as cursor:
        cursor.execute(sql)
    return caught.value


@pytest.mark.django_db
def test_a_missing_table_is_not_transient():
    # Given a statement on a table that does not exist (every vendor words it differently)
    error = _error_of("SELECT * FROM django_jobs_no_such_table")
    # Then retrying is pointless
    assert not is_transient(error)


@pytest.mark.django_db
def test_a_missing_column_is_not_transient():
    error = _error_of("SELECT no_such_column FROM django_jobs_job")
    assert not is_transient(error)


@pytest.mark.django_db
def test_a_syntax_error_is_not_transient():
    error = _error_of("SELEC 1")
    assert not is_transient(error)


def test_redis_down_is_transient():
    assert is_transient(BrokerUnavailable("redis: connection refused"))


def _kill_from_another_connection(pid) -> None:
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            else:
                cursor.execute(f"KILL {int(pid)}")
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_a_connection_killed_by_the_server_is_transient():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server to drop the connection")
    # Given the server drops this connection (a restart, a pooler, an operator)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid()"
            if connection.vendor == "postgresql"
            else "SELECT CONNECTION_ID()"
        )
        pid = cursor.fetchone()[0]
    _kill_from_another_connection(pid)
    # When the next statement runs on it
    with pytest.raises(Exception) as caught, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.close()
    # Then it is worth a retry on a new connection
    assert is_transient(caught.value), repr(caught.value)
