"""The request class: JSON body failures become clear 400/415 errors."""

from __future__ import annotations

from typing import Any

from flask import Request
from flask import json as flask_json
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from gateway.storable import UNSTORABLE

# Deeper bodies are refused before anything walks them: no request needs more than a few levels.
MAX_JSON_DEPTH = 64


class UnstorableJSON(ValueError):
    """Valid JSON that the gateway refuses: too deep, or text PostgreSQL cannot store."""


def _check(value: Any) -> None:
    """Iteratively (no recursion to exhaust) refuse NUL, lone surrogates and deep nesting.

    PostgreSQL text and jsonb cannot hold U+0000; a lone surrogate (``"\\ud800"`` is valid
    JSON, RFC 8259 section 8.2) is no Unicode character: no UTF-8 encoder, log line, provider
    or column takes it. Both are the client's mistake, refused here for every endpoint alike.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            bad = UNSTORABLE.search(item)
            if bad is not None:
                raise UnstorableJSON(
                    "Text may not contain the NUL character (\\u0000)."
                    if bad.group() == "\x00"
                    else "Text may not contain a lone surrogate (\\ud800-\\udfff): it is not "
                    "a Unicode character."
                )
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise UnstorableJSON(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


class CheckedJSON:
    """Wraps a JSON module (Flask's provider): its ``loads``, then the checks above."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def loads(self, data: Any, **kwargs: Any) -> Any:
        try:
            value = self._module.loads(data, **kwargs)
        except RecursionError:
            raise UnstorableJSON(
                f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels."
            ) from None
        _check(value)
        return value

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return self._module.dumps(obj, **kwargs)


class JSONRequest(Request):
    _json = CheckedJSON(flask_json)

    # Flask assigns the app's JSON provider to every request; request bodies go through the
    # checks whichever provider that is.
    @property  # type: ignore[override]
    def json_module(self) -> CheckedJSON:
        return self._json

    @json_module.setter
    def json_module(self, module: Any) -> None:
        self._json = CheckedJSON(module)

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise UnsupportedMediaType(
                "The request body must be JSON (Content-Type: application/json)."
            )
        if isinstance(e, UnstorableJSON):
            raise BadRequest(str(e))
        raise BadRequest("The request body is not valid JSON.")
