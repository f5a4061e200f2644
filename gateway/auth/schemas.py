"""The auth endpoints' boundary: request bodies (strict, capped, no unknown fields) and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

# ASCII control characters and spaces spelled out: "\s" means different things in Python and in
# the JSON Schema (ECMA) regex that API clients validate against.
EMAIL_PATTERN = r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+$"
Email = Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=EMAIL_PATTERN)]
# Upper bound keeps a hostile body from making the slow hash slower still.
NewPassword = Annotated[
    str,
    StringConstraints(min_length=10, max_length=256),
    Field(
        description=(
            "Prepared with the PRECIS OpaqueString profile (RFC 8265, section 4.2): NFC, "
            "non-ASCII spaces as U+0020. Controls and unassigned code points are refused (422)."
        )
    ),
]
AnyPassword = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Credentials(Strict):
    email: Email
    password: NewPassword


class LoginRequest(Strict):
    email: Email
    password: AnyPassword


class LogoutRequest(Strict):
    refresh_token: str | None = Field(default=None, max_length=4096)


def _whole_number(value: object) -> object:
    """JSON Schema's integers include ``30.0``: take it as ``30``; ``30.5`` stays refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class NewApiKey(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    # The bounds before the validator, or pydantic writes them as "ge"/"le" in the JSON Schema.
    expires_in_days: Annotated[int, Field(ge=1, le=3650), BeforeValidator(_whole_number)] | None = (
        None
    )


class Account(BaseModel):
    id: uuid.UUID
    email: str
    role: Literal["user", "admin"]
    created_at: datetime


class AccountList(BaseModel):
    users: list[Account]


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds until the access token expires.")


class ApiKeyInfo(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class CreatedApiKey(ApiKeyInfo):
    key: str = Field(description="The secret: shown once, at creation.")


class ApiKeyList(BaseModel):
    keys: list[ApiKeyInfo]
