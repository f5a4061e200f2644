"""Login throttling: failures counted per account and per client address in PostgreSQL."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import case, delete
from sqlalchemy.dialects import postgresql

from gateway.database import unit_of_work
from gateway.errors import GatewayError
from gateway.extensions import db
from gateway.models import LoginFailure, utcnow

if TYPE_CHECKING:
    from gateway.settings import AuthSettings

# Many people may share one address (NAT, offices): it gets more room than one account.
ADDRESS_ALLOWANCE = 4


class TooManyLoginAttempts(GatewayError):
    code = 429
    error_type = "too_many_login_attempts"
    description = "Too many failed logins; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers={"Retry-After": str(retry_after)})


def _keys(email: str, address: str | None) -> list[tuple[str, int]]:
    return [(f"account:{email}", 1), (f"address:{address or 'unknown'}", ADDRESS_ALLOWANCE)]


@unit_of_work()
def check_login_allowed(email: str, address: str | None, settings: AuthSettings) -> None:
    """Refuse with 429 and Retry-After while an account or an address is over its limit."""
    now = utcnow()
    window = timedelta(seconds=settings.login_window_seconds)
    for key, allowance in _keys(email, address):
        row = db.session.get(LoginFailure, key)
        if row is None or now - row.window_start >= window:
            continue
        if row.count >= settings.login_max_failures * allowance:
            remaining = (row.window_start + window - now).total_seconds()
            raise TooManyLoginAttempts(retry_after=max(1, math.ceil(remaining)))


def record_login_failure(email: str, address: str | None, settings: AuthSettings) -> None:
    """Count one failure atomically (an upsert), restarting a window that has run out."""
    now = utcnow()
    window_floor = now - timedelta(seconds=settings.login_window_seconds)
    for key, _ in _keys(email, address):
        insert = postgresql.insert(LoginFailure).values(key=key, count=1, window_start=now)
        expired = LoginFailure.window_start < window_floor
        statement = insert.on_conflict_do_update(
            index_elements=[LoginFailure.key],
            set_={
                "count": case((expired, 1), else_=LoginFailure.count + 1),
                "window_start": case((expired, now), else_=LoginFailure.window_start),
            },
        )
        db.session.execute(statement)
    db.session.commit()


def clear_login_failures(email: str, settings: AuthSettings) -> None:
    """A successful login clears the account's counter (not the address's) and stale rows."""
    floor = utcnow() - timedelta(seconds=settings.login_window_seconds)
    db.session.execute(
        delete(LoginFailure).where(
            (LoginFailure.key == f"account:{email}") | (LoginFailure.window_start < floor)
        )
    )
    db.session.commit()
