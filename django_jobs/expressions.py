"""Database expressions the job transitions need on every supported vendor."""

import json

from django.db.models import Func, JSONField, Value

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
