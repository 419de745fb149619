"""Database expressions the job transitions need on every supported vendor."""

import json
from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Func, JSONField, Value

#: Append one JSON value to a JSON array column, per vendor.
_APPEND = {
    "postgresql": "({column} || jsonb_build_array(({value})::jsonb))",
    "mysql": "JSON_ARRAY_APPEND({column}, '$', JSON_EXTRACT({value}, '$'))",
    "sqlite": "json_insert({column}, '$[#]', json({value}))",
}


class AppendJSON(Func):
    """Append one value to a JSON array column, in the UPDATE itself (no read-modify-write)."""

    output_field = JSONField()

    def __init__(self, column: str, value, **extra):
        super().__init__(column, Value(json.dumps(value)), **extra)

    def as_sql(self, compiler, connection, **extra):
        column_sql, column_params = compiler.compile(self.source_expressions[0])
        value_sql, value_params = compiler.compile(self.source_expressions[1])
        sql = _APPEND[connection.vendor].format(column=column_sql, value=value_sql)
        return sql, (*column_params, *value_params)


#: Drop the last element of a JSON array column, per vendor.
_DROP_LAST = {
    "postgresql": "({column} - -1)",
    "mysql": "JSON_REMOVE({column}, CONCAT('$[', JSON_LENGTH({column}) - 1, ']'))",
    "sqlite": "json_remove({column}, '$[#-1]')",
}


class DropLastJSON(Func):
    """Drop the last value of a JSON array column, in the UPDATE itself (undoes AppendJSON)."""

    output_field = JSONField()

    def as_sql(self, compiler, connection, **extra):
        column_sql, column_params = compiler.compile(self.source_expressions[0])
        sql = _DROP_LAST[connection.vendor].format(column=column_sql)
        params = column_params * sql.count(column_sql)
        return sql, tuple(params)


class DatabaseNow(Func):
    """The database server's current time (UTC), for lease arithmetic done in SQL.

    Leases are decided by one clock, the database's, never by the clocks of the hosts that
    run workers: two workers whose hosts disagree by more than ``lease - heartbeat`` would
    otherwise rescue each other's live jobs. On SQLite the database's clock is the clock of
    the host running the worker (SQLite has no server), which is also every worker's host.
    """

    template = "STATEMENT_TIMESTAMP()"
    output_field = DateTimeField()

    def as_mysql(self, compiler, connection, **extra_context):
        # CURRENT_TIMESTAMP is in the session's time zone; Django stores UTC.
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        template = "STRFTIME('%%%%Y-%%%%m-%%%%d %%%%H:%%%%M:%%%%f', 'NOW')"
        return self.as_sql(compiler, connection, template=template, **extra_context)


def lease_deadline(lease: timedelta) -> ExpressionWrapper:
    """When a lease taken or renewed now runs out, by the database's clock."""
    return ExpressionWrapper(DatabaseNow() + lease, output_field=DateTimeField())
