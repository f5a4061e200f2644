"""Passwords are compared in their PRECIS OpaqueString form (RFC 8265): NFC, ASCII spaces."""

from __future__ import annotations

import unicodedata

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.extensions import db
from gateway.models import User

PASSWORD_NFC = unicodedata.normalize("NFC", "café crème brûlée 1")
PASSWORD_NFD = unicodedata.normalize("NFD", PASSWORD_NFC)


def _register(client, email: str, password: str):
    return client.post("/auth/register", json={"email": email, "password": password})


def _login(client, email: str, password: str):
    return client.post("/auth/login", json={"email": email, "password": password})


def test_the_two_spellings_differ_so_the_tests_below_mean_something():
    assert PASSWORD_NFC != PASSWORD_NFD
    assert len(PASSWORD_NFD) > len(PASSWORD_NFC)


def test_registered_in_nfc_logs_in_with_nfd_and_the_other_way(client):
    assert _register(client, "nfc@example.com", PASSWORD_NFC).status_code == 201
    assert _register(client, "nfd@example.com", PASSWORD_NFD).status_code == 201
    assert _login(client, "nfc@example.com", PASSWORD_NFD).status_code == 200
    assert _login(client, "nfd@example.com", PASSWORD_NFC).status_code == 200
    assert _login(client, "nfc@example.com", "cafe creme brulee 1").status_code == 401


def test_a_no_break_space_counts_as_a_space(client):
    assert _register(client, "nbsp@example.com", "correct\u00a0horse battery").status_code == 201
    assert _login(client, "nbsp@example.com", "correct horse battery").status_code == 200


def test_a_password_with_control_characters_is_refused_at_registration(client, app):
    response = _register(client, "ctl@example.com", "abc\x07defghijkl")
    assert response.status_code == 422
    assert response.get_json()["error"]["type"] == "validation_error"
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "ctl@example.com")) is None


def test_a_hash_made_before_preparation_still_works_and_is_upgraded(client, app):
    with app.app_context():
        # What registration stored before passwords were prepared: the raw NFD text.
        db.session.add(
            User(
                email="old@example.com",
                password_hash=generate_password_hash(PASSWORD_NFD, method="scrypt"),
            )
        )
        db.session.commit()
    assert _login(client, "old@example.com", PASSWORD_NFD).status_code == 200
    with app.app_context():
        stored = db.session.scalar(select(User).where(User.email == "old@example.com"))
        assert check_password_hash(stored.password_hash, PASSWORD_NFC)
    # Once upgraded, either spelling logs in.
    assert _login(client, "old@example.com", PASSWORD_NFC).status_code == 200


def test_changing_the_admin_password_prepares_it_too(app):
    from gateway.auth.users import authenticate, ensure_admin

    with app.app_context():
        ensure_admin("root@example.com", "first password 1")
        ensure_admin("root@example.com", PASSWORD_NFD)
        assert authenticate("root@example.com", PASSWORD_NFC) is not None
