"""Request bodies of the auth endpoints: strict types, capped lengths, no unknown fields."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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


class NewApiKey(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
