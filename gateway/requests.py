"""The request class: JSON body failures become clear 400/415 errors."""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType


class JSONRequest(Request):
    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise UnsupportedMediaType(
                "The request body must be JSON (Content-Type: application/json)."
            )
        raise BadRequest("The request body is not valid JSON.")
