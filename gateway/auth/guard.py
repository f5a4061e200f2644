"""Who is calling: a JWT access token, a personal API key, or (development only) the mock user."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request
from flask_jwt_extended import get_current_user, verify_jwt_in_request
from werkzeug.exceptions import Forbidden

from gateway.auth.tokens import API_KEY_PREFIX, user_for_api_key
from gateway.auth.users import ensure_mock_user
from gateway.database import unit_of_work
from gateway.errors import AuthenticationRequired
from gateway.extensions import db
from gateway.models import User
from gateway.services import get_services

F = TypeVar("F", bound=Callable[..., Any])


def current_user() -> User:
    """The caller, resolved once per request."""
    user = g.get("current_user")
    if user is None:
        # Its own unit of work: the view may wait on the network next (the model, a tool),
        # and authentication's connection must be back in the pool by then.
        with unit_of_work():
            user = _detached(_resolve_caller())
        g.current_user = user
    return user


def _detached(user: User) -> User:
    """The user with its columns loaded, outside the session."""
    for column in User.__table__.columns:
        getattr(user, column.key)
    if user in db.session:
        db.session.expunge(user)
    return user


def _resolve_caller() -> User:
    header = request.headers.get("Authorization", "")
    if not header:
        if get_services().settings.mock_auth_enabled:
            return ensure_mock_user()
        raise AuthenticationRequired("Missing Authorization header.")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise AuthenticationRequired("The Authorization header must be 'Bearer <token>'.")
    if credential.startswith(API_KEY_PREFIX):
        user = user_for_api_key(credential)
        if user is None:
            raise AuthenticationRequired("The API key is invalid, expired or revoked.")
        return user
    verify_jwt_in_request()  # access tokens only; failures become 401 through the JWT loaders
    return get_current_user()


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_user()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user().is_admin:
            raise Forbidden("This endpoint is for administrators.")
        return view(*args, **kwargs)

    wrapper.admin_only = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
