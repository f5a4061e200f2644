"""Text PostgreSQL can store: one sanitizer for every text and JSON column, applied at flush.

PostgreSQL text cannot hold U+0000 (psycopg2: "A string literal cannot contain NUL"; JSONB:
"\\u0000 cannot be converted to text"), UTF-8 cannot encode a lone surrogate (U+D800..U+DFFF,
which ``json.loads`` happily produces from ``"\\ud800"``), and ``varchar(n)`` refuses longer
strings. Tool results, tool arguments, model text, titles and error messages come from
sources we do not control, so every ORM insert and update passes through ``storable`` (and
the turn's Core writes through ``storable_row``):

- NUL and lone surrogates become U+FFFD REPLACEMENT CHARACTER, the marker Unicode defines for
  "a character that could not be represented" (the client sees it in the stored text);
- a string longer than its ``String(n)`` column is cut to n characters, the last one "…".

JSON values are walked recursively (keys too). What the turn sends to the model is untouched:
only the stored copy changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import JSON, Column, String, Table, event
from sqlalchemy.orm import Mapper

REPLACEMENT = "\ufffd"
# NUL and lone surrogates: what no text column, UTF-8 encoder or log line takes.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str, max_length: int | None = None) -> str:
    """``text`` without NUL or lone surrogates, cut to ``max_length`` characters if given."""
    if UNSTORABLE.search(text):
        text = UNSTORABLE.sub(REPLACEMENT, text)
    if max_length is not None and len(text) > max_length:
        text = text[: max_length - 1] + "…"
    return text


def storable_json(value: Any) -> Any:
    """A JSON value whose strings (keys included) are all storable; the same object if so."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        cleaned = {storable_text(str(k)): storable_json(v) for k, v in value.items()}
        same = all(a is b for a, b in zip(value, cleaned, strict=True)) and all(
            value[k] is cleaned[k] for k in value
        )
        return value if same else cleaned
    if isinstance(value, list | tuple):
        cleaned_items = [storable_json(v) for v in value]
        if all(a is b for a, b in zip(value, cleaned_items, strict=True)):
            return value
        return cleaned_items
    return value


def storable_value(column: Column[Any], value: Any) -> Any:
    """``value`` as ``column`` can store it: the same object when nothing had to change."""
    if value is None:
        return None
    if isinstance(column.type, String) and isinstance(value, str):
        return storable_text(value, column.type.length)
    if isinstance(column.type, JSON) or isinstance(_variant_base(column.type), JSON):
        return storable_json(value)
    return value


def storable_row(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """A Core INSERT's or UPDATE's values (column name -> value), cleaned as a flush cleans.

    For writes that skip the ORM's unit of work (the turn's hot path): the flush hook above
    never sees them. Raises KeyError for a name that is not a column of ``table``.
    """
    return {name: storable_value(table.c[name], value) for name, value in values.items()}


def _clean_row(_mapper: Mapper[Any], _connection: Any, target: Any) -> None:
    for column_attr in _mapper.column_attrs:
        value = getattr(target, column_attr.key, None)
        cleaned = storable_value(column_attr.columns[0], value)
        if cleaned is not value:
            setattr(target, column_attr.key, cleaned)


def _variant_base(type_: Any) -> Any:
    # JSON().with_variant(JSONB(), "postgresql") is a JSON already; keep this for other variants.
    return getattr(type_, "impl", type_)


def sanitize_on_flush(base: type) -> None:
    """Clean every mapped subclass of ``base`` before each INSERT and UPDATE (idempotent)."""
    for name in ("before_insert", "before_update"):
        if not event.contains(base, name, _clean_row):
            event.listen(base, name, _clean_row, propagate=True)
