"""The turn's writes as Core statements: sent at once, nothing tracked, batched when asked.

A turn writes rows it never reads back in the same request (the prompt, the answer, tool
calls). ``session.add`` pays for an identity map, flush ordering and change tracking on every
one of them; on the hot path (issue #20) they are one INSERT or UPDATE each, through the same
session and transaction (``unit_of_work``). Inside ``one_statement()`` they are not sent one
by one but together, as PostgreSQL data-modifying CTEs (``WITH w0 AS (INSERT ...), w1 AS
(UPDATE ...) INSERT ...``): one round trip. Column defaults still apply, and every value is
cleaned as a flush cleans it (``gateway.storable``). An ``IntegrityError`` (a conversation
deleted under the turn) is raised by the statement itself, not at commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, update

from gateway.extensions import db
from gateway.storable import storable_row

if TYPE_CHECKING:
    from sqlalchemy import Insert, Table, Update

# The WHERE parameter of ``update_by_id``: not "id", which would name the column to SET.
_ROW_ID = "row_id"
# Session.info key: the statements of the open ``one_statement`` block.
_BATCH = "gateway.rows.batch"


@cache
def _insert(table: Table) -> Insert:
    return insert(table)


@cache
def _update(table: Table) -> Update:
    return update(table).where(table.c.id == bindparam(_ROW_ID))


@contextmanager
def one_statement() -> Iterator[None]:
    """The rows written inside the block, sent as one statement when it ends.

    PostgreSQL runs a statement's CTEs on one snapshot: no write in the block may need to read
    another's result. A foreign key to a row inserted earlier in the block is fine (checked at
    the statement's end). A block inside another joins it; a block that raises sends nothing.
    """
    info = db.session.info
    if _BATCH in info:
        yield
        return
    pending: list[Insert | Update] = []
    info[_BATCH] = pending
    try:
        yield
    finally:
        del info[_BATCH]
    if pending:
        *before, last = pending
        ctes = [statement.cte(f"write_{n}") for n, statement in enumerate(before)]
        db.session.execute(last.add_cte(*ctes) if ctes else last)


def insert_row(model: Any, values: Mapping[str, Any]) -> None:
    """INSERT one row of ``model`` (a mapped class) with ``values`` (column name -> value)."""
    table = model.__table__
    row = storable_row(table, values)
    pending = db.session.info.get(_BATCH)
    if pending is None:
        db.session.execute(_insert(table), row)
    else:  # a CTE cannot fetch Python-side defaults: they go in as values
        pending.append(insert(table).values(_with_defaults(table, row, "default")))


def update_by_id(model: Any, row_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    """UPDATE the row of ``model`` whose primary key ``id`` is ``row_id``; 0 rows is no error."""
    table = model.__table__
    row = storable_row(table, values)
    pending = db.session.info.get(_BATCH)
    if pending is None:
        db.session.execute(_update(table), {**row, _ROW_ID: row_id})
    else:
        statement = update(table).where(table.c.id == row_id)
        pending.append(statement.values(_with_defaults(table, row, "onupdate")))


def _with_defaults(table: Table, row: dict[str, Any], kind: str) -> dict[str, Any]:
    """``row`` and the Python-side ``default`` (or ``onupdate``) of every column it lacks."""
    out = dict(row)
    for column in table.columns:
        default = getattr(column, kind)
        if column.name in out or default is None:
            continue
        if default.is_scalar:
            out[column.name] = default.arg
        elif default.is_callable:
            out[column.name] = default.arg(None)  # SQLAlchemy's wrapper; ours take no context
    return out
