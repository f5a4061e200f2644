"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, Field

from gateway.database import database_ready
from gateway.openapi import Reply, operation
from gateway.services import get_services, warm_state

bp = Blueprint("health", __name__)


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description="database, warm: ok or what is wrong.")
    mcp: dict[str, str] = Field(description="Each MCP server's state (not part of readiness).")


@bp.get("/health")
@operation("Liveness", responses={200: Liveness}, public=True)
def liveness() -> ResponseReturnValue:
    """Touches no dependency: a slow database must not get the container restarted."""
    return {"status": "ok"}


@bp.get("/health/ready")
@operation(
    "Readiness: the database and this worker (MCP server states reported)",
    responses={
        200: Readiness,
        503: Reply(Readiness, "Not ready", headers={"Retry-After": "Seconds to wait."}),
    },
    public=True,
)
def readiness() -> ResponseReturnValue:
    """Ready when the database answers and this worker is warm (gateway.services.warm_up);
    names the failed dependency, never its internals.

    MCP server states are reported but do not fail readiness: a broken tool server must not
    take the whole gateway out of rotation (its tools are withheld from routing instead).
    """
    checks = {"database": "ok" if database_ready() else "unavailable"}
    warm = warm_state(current_app)
    if warm is not None:
        checks["warm"] = warm
    ready = all(state == "ok" for state in checks.values())
    mcp = {status.name: status.state for status in get_services().mcp.statuses()}
    response = jsonify({"status": "ok" if ready else "unavailable", "checks": checks, "mcp": mcp})
    response.status_code = 200 if ready else 503
    if not ready:
        response.headers["Retry-After"] = "5"
    return response
