"""A partial index that degrades to a full index where partial indexes don't exist."""

import copy

from django.db import models


class PartialIndex(models.Index):
    """Index rows matching ``where`` on PostgreSQL/SQLite; index every row on MySQL/MariaDB.

    Django's own ``condition=`` silently drops the index on MySQL; the claim query needs an
    index there too, so this one keeps it (led by ``status``, which narrows it the same way).
    """

    def __init__(self, *args, where: models.Q, **kwargs):
        super().__init__(*args, **kwargs)
        self.where = where

    def create_sql(self, model, schema_editor, using="", **kwargs):
        index = self
        if schema_editor.connection.features.supports_partial_indexes:
            index = copy.copy(self)
            index.condition = self.where
        return models.Index.create_sql(index, model, schema_editor, using=using, **kwargs)

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        kwargs["where"] = self.where
        return "django_jobs.db.indexes.PartialIndex", args, kwargs

    def __eq__(self, other):
        return super().__eq__(other) and self.where == getattr(other, "where", None)

    __hash__ = models.Index.__hash__
