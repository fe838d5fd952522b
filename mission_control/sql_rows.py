"""One model instance from hand-written SQL, without `raw()`'s set-up on every call.

The two lookups of every token request and every download's access check (the
token's owner, the image) are SQL because compiling them through the ORM cost
more than running them. `QuerySet.raw()` still worked out, on each call, which
column is which field, the model's init order and each column's converters:
about a third of the access check's Python under cProfile. Here the column
list and the converters are worked out once per model and database connection
(a kept request thread keeps its connection wrapper, mission_control/
request_threads.py), and the row becomes an instance through `Model.from_db`,
with the values converted as the ORM's own iterables convert them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connection, connections
from django.db.models import Field, Model

from mission_control import prepared_sql

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]
Plan = tuple[list[str], list[tuple[int, list[Converter], Any]]]


def _plan(model: type[Model]) -> Plan:
    """Return the model's concrete field attnames and, per position, its converters."""
    # On this thread's wrapper, not on `connection` (a proxy shared by every thread):
    # the backend's converters are methods of the wrapper's own `ops`.
    plans = connections[connection.alias].__dict__.setdefault("_mc_row_plans", {})
    plan = plans.get(model)
    if plan is None:
        fields: list[Field] = list(model._meta.concrete_fields)
        converters = []
        for position, field in enumerate(fields):
            column = field.get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if found:
                converters.append((position, found, column))
        plan = plans[model] = ([field.attname for field in fields], converters)
    return plan


def columns_of(model: type[Model], table_alias: str) -> str:
    """Return `alias.col, ...` for the model's concrete fields, in `from_row`'s order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{table_alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def first_row(
    model: type[M], sql: str, params: Sequence[Any], *, prepare: bool = False
) -> tuple[M, tuple[Any, ...]] | tuple[None, tuple[()]]:
    """Run `sql`, which selects `columns_of(model, ...)` first; return its first row.

    The instance is built from the model's columns; any columns selected after
    them come back as they are, in a tuple (None and () without a row): a second
    model's columns among them become an instance with `instance_from`. With
    `prepare`, PostgreSQL plans it once per connection (`prepared_sql`).
    """
    with connection.cursor() as cursor:
        if prepare:
            prepared_sql.execute(cursor, sql, params)
        else:
            cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None, ()
    width = len(model._meta.concrete_fields)
    return instance_from(model, row[:width]), tuple(row[width:])


def instance_from(model: type[M], values: Sequence[Any]) -> M:
    """Return the instance whose `columns_of(model, ...)` values are `values`, converted."""
    attnames, converters = _plan(model)
    values = list(values)
    for position, found, column in converters:
        value = values[position]
        for convert in found:
            value = convert(value, column, connection)
        values[position] = value
    return model.from_db(connection.alias, attnames, values)
