"""Test data from plain functions, through the real code paths."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_jwt_extended import create_access_token

from gateway.auth.users import register_user
from gateway.models import User

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


@dataclass(frozen=True)
class Account:
    """A user as tests need it after the app context is gone."""

    id: uuid.UUID
    email: str
    password: str
    headers: dict[str, str]


def auth_headers(user: User, **token_options: Any) -> dict[str, str]:
    """A real access token for ``user`` (inside an app context)."""
    return {"Authorization": f"Bearer {create_access_token(identity=user, **token_options)}"}


def create_account(
    app: Flask, *, email: str | None = None, password: str = PASSWORD, role: str = "user"
) -> Account:
    with app.app_context():
        user = register_user(email or f"user{next(_counter)}@example.com", password, role=role)
        return Account(user.id, user.email, password, auth_headers(user))


def create_conversation(app: Flask, account: Account, *, title: str = "Chat") -> uuid.UUID:
    """A conversation with one exchange, written directly (no LLM involved)."""
    from gateway.extensions import db
    from gateway.models import Conversation, ConversationMessage

    with app.app_context():
        conversation = Conversation(user_id=account.id, title=title)
        db.session.add(conversation)
        db.session.flush()
        for role, text in (("user", "hello"), ("assistant", "hi there")):
            db.session.add(
                ConversationMessage(
                    conversation_id=conversation.id,
                    user_id=account.id,
                    role=role,
                    content=[{"type": "text", "text": text}],
                )
            )
        db.session.commit()
        return conversation.id
