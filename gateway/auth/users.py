"""Accounts: registration, password checks, the first admin and the development mock user."""

from __future__ import annotations

import functools
import logging
import secrets
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.auth.passwords import UnusablePassword, candidates, prepare
from gateway.errors import GatewayError, ValidationFailed
from gateway.extensions import db
from gateway.models import User
from gateway.services import get_services

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

MOCK_USER_EMAIL = "dev@localhost"


@functools.cache
def _dummy_hash() -> str:
    """Checked when the email is unknown, so that both failures take the same time."""
    return generate_password_hash(secrets.token_hex(16), method="scrypt")


class EmailTaken(GatewayError):
    code = 409
    error_type = "email_taken"
    description = "An account with this email already exists."


class RegistrationClosed(GatewayError):
    code = 403
    error_type = "registration_closed"
    description = "Registration is disabled on this gateway."


def normalize_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    """The scrypt hash of the password's OpaqueString form (RFC 8265); 422 if it has none."""
    try:
        prepared = prepare(password)
    except UnusablePassword as exc:
        raise ValidationFailed(
            details=[{"field": "password", "message": f"not allowed in a password: {exc}"}]
        ) from None
    return generate_password_hash(prepared, method="scrypt")


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def register_user(email: str, password: str, *, role: str = "user") -> User:
    """Create an account; 409 when the email is taken (unique index, race-safe)."""
    user = User(email=normalize_email(email), password_hash=hash_password(password), role=role)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise EmailTaken() from None
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user when the password matches; None otherwise, in the same time either way."""
    user = find_user_by_email(email)
    stored = user.password_hash if user and user.password_hash else _dummy_hash()
    tried = candidates(password)
    matched = [check_password_hash(stored, text) for text in tried]
    if not any(matched) or user is None or not user.is_active:
        return None
    if not matched[0]:
        # A hash made before passwords were prepared: store the prepared form's hash now.
        user.password_hash = generate_password_hash(tried[0], method="scrypt")
        db.session.commit()
    return user


def list_users(limit: int = 1000) -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.created_at).limit(limit)))


def ensure_admin(email: str, password: str | None) -> User:
    """Create the admin, or promote an existing account (its password set when one is given)."""
    user = find_user_by_email(email)
    if user is None:
        if not password:
            raise ValueError("a password is needed to create an admin")
        user = User(email=normalize_email(email), password_hash=hash_password(password))
        db.session.add(user)
        log.info("✅ Admin account created: %s", user.email)
    elif password:
        user.password_hash = hash_password(password)
    user.role = "admin"
    db.session.commit()
    return user


def ensure_mock_user() -> User:
    """The development user that token-less requests act as (development only)."""
    user = find_user_by_email(MOCK_USER_EMAIL)
    if user is not None:
        return user
    # No password: nobody can log in as this user, only mock auth and dev tokens reach it.
    user = User(email=MOCK_USER_EMAIL, password_hash=None, role="admin")
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # another worker created it first
        db.session.rollback()
        return find_user_by_email(MOCK_USER_EMAIL)  # type: ignore[return-value]
    log.info("✅ Mock user created for development")
    return user


def bootstrap_accounts(app: Flask) -> None:
    """Start-up work: the admin from ADMIN_EMAIL/ADMIN_PASSWORD, the mock user in development."""
    settings = get_services(app).settings
    with app.app_context():
        if settings.auth.admin_email:
            existing = find_user_by_email(settings.auth.admin_email)
            if existing is None or not existing.is_admin:
                ensure_admin(settings.auth.admin_email, settings.auth.admin_password)
        if settings.mock_auth_enabled:
            ensure_mock_user()
