"""Tokens: JWT settings and loaders (revocation, 401 for every failure) and personal API keys."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from sqlalchemy import delete, select
from sqlalchemy.orm import joinedload, make_transient_to_detached

from gateway.errors import AuthenticationRequired, NotFoundError, error_response
from gateway.extensions import db, jwt
from gateway.models import ApiKey, RevokedToken, User, utcnow

if TYPE_CHECKING:
    from flask import Flask, Response

    from gateway.settings import AuthSettings

ISSUER = "mcp-gateway"
AUDIENCE = "mcp-gateway-api"
API_KEY_PREFIX = "mgw_"
# last_used_at is written at most this often per key, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyCache:
    """Valid keys' owners by key hash, for ``seconds`` (API_KEY_CACHE_SECONDS); one per worker.

    The owner's read was 11-14 % of a worker's CPU under load (issue #20). Revoking a key
    through this process takes effect at once; through another worker or replica, within
    ``seconds``. Expiry is checked on every request.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, dict[str, Any], datetime | None]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str, now: datetime) -> User | None:
        """A fresh detached copy of the owner (never an object shared between requests)."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        checked_at, columns, expires_at = entry
        if time.monotonic() - checked_at > self.seconds or (
            expires_at is not None and expires_at <= now
        ):
            self.discard(key_hash)
            return None
        user = User(**columns)
        make_transient_to_detached(user)
        return user

    def put(self, key_hash: str, user: User, expires_at: datetime | None) -> None:
        columns = {c.key: getattr(user, c.key) for c in User.__table__.columns}
        with self._lock:
            self._entries[key_hash] = (time.monotonic(), columns, expires_at)

    def discard(self, key_hash: str) -> None:
        with self._lock:
            self._entries.pop(key_hash, None)


def api_key_cache() -> ApiKeyCache:
    from gateway.services import get_services

    return get_services().api_key_cache


def jwt_config(settings: AuthSettings) -> dict[str, Any]:
    """Algorithm pinned, issuer and audience set and checked, tokens only in the header."""
    return {
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        "JWT_ENCODE_ISSUER": ISSUER,
        "JWT_DECODE_ISSUER": ISSUER,
        "JWT_ENCODE_AUDIENCE": AUDIENCE,
        "JWT_DECODE_AUDIENCE": AUDIENCE,
        "JWT_TOKEN_LOCATION": ["headers"],
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=settings.access_token_minutes),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=settings.refresh_token_days),
    }


def _unauthorized(message: str) -> Response:
    return error_response(AuthenticationRequired(message))


def register_jwt_callbacks(app: Flask) -> None:
    """Every JWT failure is a 401 in our envelope (the library answers some with 422)."""

    @jwt.user_identity_loader
    def _identity(user: User) -> str:
        return str(user.id)

    @jwt.user_lookup_loader
    def _lookup(_header: dict, payload: dict) -> User | None:
        try:
            user = db.session.get(User, uuid.UUID(payload["sub"]))
        except (ValueError, KeyError):
            return None
        return user if user is not None and user.is_active else None

    @jwt.token_in_blocklist_loader
    def _revoked(_header: dict, payload: dict) -> bool:
        return db.session.get(RevokedToken, payload["jti"]) is not None

    jwt.unauthorized_loader(lambda reason: _unauthorized("Missing or malformed credentials."))
    jwt.invalid_token_loader(lambda reason: _unauthorized("The token is invalid."))
    jwt.expired_token_loader(lambda h, p: _unauthorized("The token has expired."))
    jwt.revoked_token_loader(lambda h, p: _unauthorized("The token has been revoked."))
    jwt.user_lookup_error_loader(lambda h, p: _unauthorized("The token's user no longer exists."))
    jwt.needs_fresh_token_loader(lambda h, p: _unauthorized("A fresh login is required."))
    jwt.token_verification_failed_loader(lambda h, p: _unauthorized("The token is invalid."))


def issue_tokens(user: User, settings: AuthSettings) -> dict[str, Any]:
    """The OAuth2-shaped login answer."""
    return {
        "access_token": create_access_token(identity=user),
        "refresh_token": create_refresh_token(identity=user),
        "token_type": "Bearer",
        "expires_in": settings.access_token_minutes * 60,
    }


def revoke_token(payload: dict[str, Any]) -> None:
    """Record a token's jti until it would have expired anyway; purge rows already past."""
    now = utcnow()
    db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    if db.session.get(RevokedToken, payload["jti"]) is None:
        db.session.add(
            RevokedToken(
                jti=payload["jti"],
                token_type=payload["type"],
                user_id=uuid.UUID(payload["sub"]),
                expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            )
        )
    db.session.commit()


def refresh_payload_for(user: User, refresh_token: str) -> dict[str, Any] | None:
    """The decoded refresh token when it is valid and belongs to ``user``; None otherwise."""
    try:
        payload = decode_token(refresh_token)
    except Exception:  # any decoding failure: not a token we will act on
        return None
    if payload.get("type") != "refresh" or payload.get("sub") != str(user.id):
        return None
    return payload


def _hash_key(key: str) -> str:
    # API keys are 256-bit random strings: a fast hash is enough, a slow one would tax every call.
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(user: User, name: str, expires_in_days: int | None) -> tuple[ApiKey, str]:
    """A new key and its secret, which is returned this once and never stored."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user.id,
        name=name,
        prefix=secret[:12],
        key_hash=_hash_key(secret),
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(key)
    db.session.commit()
    return key, secret


def list_api_keys(user: User) -> list[ApiKey]:
    query = (
        select(ApiKey)
        .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc())
    )
    return list(db.session.scalars(query))


def revoke_api_key(user: User, key_id: uuid.UUID) -> None:
    key = db.session.scalar(
        select(ApiKey).where(
            ApiKey.id == key_id, ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None)
        )
    )
    if key is None:
        raise NotFoundError("API key not found.")
    key.revoked_at = utcnow()
    db.session.commit()
    api_key_cache().discard(key.key_hash)


def user_for_api_key(secret: str) -> User | None:
    """The active owner of a valid, unexpired, unrevoked key (see :class:`ApiKeyCache`)."""
    key_hash = _hash_key(secret)
    now = utcnow()
    cache = api_key_cache()
    cached = cache.get(key_hash, now)
    if cached is not None:
        return cached
    key = db.session.scalar(
        select(ApiKey).options(joinedload(ApiKey.user)).where(ApiKey.key_hash == key_hash)
    )
    if key is None or key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= now:
        return None
    if not key.user.is_active:
        return None
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
        db.session.commit()
    cache.put(key_hash, key.user, key.expires_at)
    return key.user
