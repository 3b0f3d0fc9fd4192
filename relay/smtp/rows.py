"""Multi-row INSERTs without model instances, for the relay's per-message path.

`insert_rows(Message, [{...}, ...])` writes what `Message.objects.bulk_create()` would
write for instances built with the same keyword arguments: every concrete column, the
value converted by the field's own `get_db_prep_save()` (dates, IP addresses, bytes),
the field's default where a row leaves it out. What it skips is the ORM's per-statement
work (model instances, query compilation), which costs more than the INSERT itself for
a one-message transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model

# Rows per statement: stays under SQLite's and PostgreSQL's parameter limits.
ROWS_PER_STATEMENT = 500


@functools.cache
def _columns(model: type[Model]) -> tuple[tuple[Field[Any, Any], ...], str]:
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key)
    q = connection.ops.quote_name
    columns = ", ".join(q(f.column) for f in fields)
    # Quoted names from the model only; every value is a parameter.
    head = f"INSERT INTO {q(model._meta.db_table)} ({columns}) VALUES "  # noqa: S608
    return fields, head


def insert_statements(
    model: type[Model], rows: Sequence[dict[str, Any]], returning: Sequence[str] = ()
) -> list[tuple[str, list[Any]]]:
    """The INSERT statements (SQL, parameters) that write `rows` (attribute name → value,
    e.g. `message_id`), each returning the `returning` columns of its rows in order."""
    fields, head = _columns(model)
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    # Defaults are computed per call, like the ORM does per instance (callables).
    defaults = {f.attname: f.get_default() for f in fields}
    q = connection.ops.quote_name
    column_of = {f.attname: f.column for f in model._meta.concrete_fields}
    tail = f" RETURNING {', '.join(q(column_of[n]) for n in returning)}" if returning else ""
    if returning and not connection.features.can_return_rows_from_bulk_insert:
        raise NotImplementedError("this database cannot return rows from a bulk INSERT")
    statements: list[tuple[str, list[Any]]] = []
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start:start + ROWS_PER_STATEMENT]
        params: list[Any] = []
        for row in chunk:
            if not row.keys() <= defaults.keys():
                raise TypeError(f"not columns of {model.__name__}: {set(row) - set(defaults)}")
            for f in fields:
                value = row[f.attname] if f.attname in row else defaults[f.attname]
                params.append(f.get_db_prep_save(value, connection))
        statements.append((head + ", ".join([placeholders] * len(chunk)) + tail, params))
    return statements


def insert_rows(
    model: type[Model], rows: Sequence[dict[str, Any]], returning: Sequence[str] = ()
) -> list[tuple[Any, ...]]:
    """INSERT `rows` (attribute name → value, e.g. `message_id`); return the `returning`
    columns of each row in order. Call it inside `transaction.atomic()`."""
    statements = insert_statements(model, rows, returning)
    out: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
            if returning:
                out.extend(tuple(r) for r in cursor.fetchall())
    return out
