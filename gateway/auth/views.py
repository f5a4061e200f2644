"""The /auth endpoints: accounts, tokens, API keys; and the admin user list."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from flask_jwt_extended import get_current_user, get_jwt, verify_jwt_in_request

from gateway.auth import schemas, throttle, tokens, users
from gateway.auth.guard import AuthenticationRequired, admin_required, current_user, login_required
from gateway.models import ApiKey, User
from gateway.openapi import NO_CONTENT, operation
from gateway.services import get_services
from gateway.settings import AuthSettings

bp = Blueprint("auth", __name__, url_prefix="/auth")
admin_bp = Blueprint("admin", __name__, url_prefix="/admin")
dev_bp = Blueprint("dev", __name__)


def _settings() -> AuthSettings:
    return get_services().settings.auth


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
    }


def api_key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
    }


@bp.post("/register")
@operation(
    "Create an account",
    body=schemas.Credentials,
    responses={201: schemas.Account},
    errors=(403, 409),
    public=True,
)
def register() -> ResponseReturnValue:
    if not _settings().allow_registration:
        raise users.RegistrationClosed()
    body = schemas.Credentials.model_validate(request.get_json())
    return user_json(users.register_user(body.email, body.password)), 201


@bp.post("/login")
@operation(
    "Log in",
    body=schemas.LoginRequest,
    responses={200: schemas.Tokens},
    errors=(401, 429),
    public=True,
)
def login() -> ResponseReturnValue:
    body = schemas.LoginRequest.model_validate(request.get_json())
    email = users.normalize_email(body.email)
    settings = _settings()
    throttle.check_login_allowed(email, request.remote_addr, settings)
    user = users.authenticate(email, body.password)
    if user is None:
        throttle.record_login_failure(email, request.remote_addr, settings)
        raise AuthenticationRequired("Wrong email or password.")
    throttle.clear_login_failures(email, settings)
    return tokens.issue_tokens(user, settings)


@bp.post("/refresh")
@operation("New tokens for a refresh token", responses={200: schemas.Tokens})
def refresh() -> ResponseReturnValue:
    """Trade a refresh token for a new pair; the old refresh token is revoked (rotation)."""
    verify_jwt_in_request(refresh=True)
    user = get_current_user()
    tokens.revoke_token(get_jwt())
    return tokens.issue_tokens(user, _settings())


@bp.post("/logout")
@operation("Revoke the presented tokens", body=schemas.LogoutRequest, responses={204: NO_CONTENT})
def logout() -> ResponseReturnValue:
    """Revoke the access token presented, and the refresh token in the body if any."""
    verify_jwt_in_request()
    user = get_current_user()
    body = schemas.LogoutRequest.model_validate(request.get_json(silent=True) or {})
    tokens.revoke_token(get_jwt())
    if body.refresh_token:
        payload = tokens.refresh_payload_for(user, body.refresh_token)
        if payload is not None:
            tokens.revoke_token(payload)
    return "", 204


@bp.get("/me")
@operation("The caller", responses={200: schemas.Account})
@login_required
def me() -> ResponseReturnValue:
    return user_json(current_user())


@bp.post("/keys")
@operation("Create an API key", body=schemas.NewApiKey, responses={201: schemas.CreatedApiKey})
@login_required
def create_key() -> ResponseReturnValue:
    body = schemas.NewApiKey.model_validate(request.get_json())
    key, secret = tokens.create_api_key(current_user(), body.name, body.expires_in_days)
    return {**api_key_json(key), "key": secret}, 201


@bp.get("/keys")
@operation("List API keys", responses={200: schemas.ApiKeyList})
@login_required
def list_keys() -> ResponseReturnValue:
    return {"keys": [api_key_json(k) for k in tokens.list_api_keys(current_user())]}


@bp.delete("/keys/<uuid:key_id>")
@operation("Revoke an API key", responses={204: NO_CONTENT}, errors=(404,))
@login_required
def revoke_key(key_id: uuid.UUID) -> ResponseReturnValue:
    tokens.revoke_api_key(current_user(), key_id)
    return "", 204


@admin_bp.get("/users")
@operation("Every account (admin)", responses={200: schemas.AccountList}, errors=(403,))
@admin_required
def list_users() -> ResponseReturnValue:
    return {"users": [user_json(u) for u in users.list_users()]}


@dev_bp.post("/auth/dev-token")
@operation(
    "A token for the mock user (development only)",
    responses={200: schemas.Tokens},
    public=True,
)
def dev_token() -> ResponseReturnValue:
    """A real signed token for the mock user: registered in development only."""
    return tokens.issue_tokens(users.ensure_mock_user(), _settings())
