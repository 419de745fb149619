"""Tell errors that retrying can mend (a lost connection, a server restarting, a lock timeout,
Redis down) from errors it cannot (bad SQL, a missing table or column, bad data).

The worker retries the first kind with backoff and stops loudly on the second: a schema that
does not match the code will not heal by itself, and a worker that only logs it forever looks
healthy while running nothing.
"""

from django.db import DatabaseError, InterfaceError, OperationalError

from django_jobs.exceptions import BrokerUnavailable

#: The errors a worker's database or broker calls may raise (transient or not).
SERVICE_ERRORS: tuple[type[BaseException], ...] = (DatabaseError, InterfaceError, BrokerUnavailable)

#: MySQL/MariaDB client and server codes that mean "the connection or server went away, or a
#: lock could not be had in time": the same statement may well succeed on a new try.
_MYSQL_TRANSIENT = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1205,  # lock wait timeout
        1213,  # deadlock
        1927,  # connection was killed
        2002,  # can't connect (socket)
        2003,  # can't connect (TCP)
        2006,  # server has gone away
        2013,  # lost connection during query
        2055,  # lost connection (system error)
        4031,  # disconnected by the server for inactivity
    }
)
#: Fragments of SQLite messages that mean "another connection holds the lock".
_SQLITE_TRANSIENT = ("locked", "busy")


def is_transient(error: BaseException) -> bool:
    """Return True if ``error`` may go away by itself, so the call is worth retrying."""
    if isinstance(error, BrokerUnavailable | InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False  # ProgrammingError, DataError, IntegrityError, NotSupportedError…
    cause = error.__cause__
    module = type(cause).__module__ if cause is not None else ""
    if module.startswith("sqlite3"):
        # SQLite reports "no such table/column" as OperationalError too.
        return any(word in str(cause).lower() for word in _SQLITE_TRANSIENT)
    if module.startswith("MySQLdb"):
        # MySQLdb reports "Unknown column" (1054) as OperationalError too.
        code = cause.args[0] if cause.args else None
        return code in _MYSQL_TRANSIENT
    # psycopg: OperationalError covers lost connections, admin shutdowns, serialization
    # failures and deadlocks; schema errors are ProgrammingError.
    return True
