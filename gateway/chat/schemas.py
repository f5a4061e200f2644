"""Request bodies of the chat API: typed, capped, no unknown fields."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, StringConstraints

# Absolute ceiling; MAX_MESSAGE_CHARS (default 32,000) is checked by the service.
MESSAGE_CEILING = 200_000
ServerName = Annotated[StrictStr, StringConstraints(min_length=1, max_length=128)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatBody(Body):
    message: Annotated[StrictStr, StringConstraints(min_length=1, max_length=MESSAGE_CEILING)]
    conversation_id: uuid.UUID | None = None
    provider: Annotated[StrictStr, StringConstraints(max_length=32)] | None = None
    model: Annotated[StrictStr, StringConstraints(max_length=128)] | None = None
    servers: Annotated[list[ServerName], Field(max_length=20)] | None = None
    stream: StrictBool = False


class ConversationPatch(Body):
    title: Annotated[
        StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ]
