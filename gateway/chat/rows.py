"""The turn's writes as single Core statements: sent at once, nothing tracked.

A turn writes rows it never reads back in the same request (the prompt, the answer, tool
calls). ``session.add`` pays for an identity map, flush ordering and change tracking on every
one of them; on the hot path (issue #20) they are one INSERT or UPDATE each, through the same
session and transaction (``unit_of_work``). Column defaults still apply, and every value is
cleaned as a flush cleans it (``gateway.storable``). An ``IntegrityError`` (a conversation
deleted under the turn) is raised by the statement itself, not at commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, update

from gateway.extensions import db
from gateway.storable import storable_row

if TYPE_CHECKING:
    from sqlalchemy import Insert, Table, Update

# The WHERE parameter of ``update_by_id``: not "id", which would name the column to SET.
_ROW_ID = "row_id"


@cache
def _insert(table: Table) -> Insert:
    return insert(table)


@cache
def _update(table: Table) -> Update:
    return update(table).where(table.c.id == bindparam(_ROW_ID))


def insert_row(model: Any, values: Mapping[str, Any]) -> None:
    """INSERT one row of ``model`` (a mapped class) with ``values`` (column name -> value)."""
    table = model.__table__
    db.session.execute(_insert(table), storable_row(table, values))


def update_by_id(model: Any, row_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    """UPDATE the row of ``model`` whose primary key ``id`` is ``row_id``; 0 rows is no error."""
    table = model.__table__
    db.session.execute(_update(table), {**storable_row(table, values), _ROW_ID: row_id})
