"""PostgreSQL: the worker's hot statements as server-side prepared statements.

Django's PostgreSQL backend binds parameters on the client and never prepares (its psycopg
``prepare_threshold`` is None unless the project sets one), so the server parses and plans a
claim or a batch of successes again on every call, and the client quotes every parameter
into the text. The claim and the batch of successes have one text each (their values travel
as parameters and arrays), so preparing them once per connection saves both. The statement
still goes through Django's connection: the same transaction, its error wrapping, and its
query log (``connection.queries``, ``CaptureQueriesContext``).

Not behind a transaction-mode pooler (``listen`` False, docs/deployment.md): a prepared
statement belongs to one server session, which such a pooler does not keep.
"""

from django.db import connections

_CURSORS = "_django_jobs_prepared_cursor"


def fetch_prepared(database: str, sql: str, params: list) -> list[tuple]:
    """Run ``sql`` (``%s`` placeholders) as a prepared statement and return its rows."""
    import psycopg

    connection = connections[database]
    connection.ensure_connection()
    raw = connection.connection
    cursor = getattr(raw, _CURSORS, None)
    if cursor is None or cursor.closed:
        # A binding cursor of the connection's own class: Django's loaders (time zones,
        # JSON) are the connection's adapters, so rows come back as from Django's cursors.
        cursor = psycopg.Cursor(raw)
        setattr(raw, _CURSORS, cursor)
    with connection.wrap_database_errors:
        if connection.queries_logged:
            # Logged as the SQL that ran, its values in place (as Django's own cursor does).
            wrapper = connection.make_debug_cursor(cursor)
            with wrapper.debug_sql(connection.ops.compose_sql(sql, params)):
                cursor.execute(sql, params, prepare=True)
        else:
            cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()
