"""Accounts, tokens, API keys, roles, ownership and mock auth, against PostgreSQL."""

from __future__ import annotations

import hashlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import jwt as pyjwt
import pytest
import requests
from sqlalchemy import func, select

from gateway import create_app
from gateway.auth.tokens import AUDIENCE, ISSUER
from gateway.auth.users import bootstrap_accounts
from gateway.extensions import db
from gateway.models import ApiKey, RevokedToken, User
from tests.conftest import TEST_SECRET, test_settings
from tests.factories import PASSWORD, auth_headers, create_account, create_conversation
from tests.live_server import gunicorn, served_by, wait_all_workers_serving


def login(client, email: str, password: str = PASSWORD):
    return client.post("/auth/login", json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


# --- accounts ---------------------------------------------------------------------------


def test_register_creates_an_account_without_exposing_the_hash(client, app):
    response = client.post(
        "/auth/register", json={"email": "Ada@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["email"] == "ada@example.com"
    assert body["role"] == "user"
    assert "password" not in str(body)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "ada@example.com"))
        assert user.password_hash.startswith("scrypt:")


def test_registering_an_existing_email_is_a_409(client, app):
    create_account(app, email="taken@example.com")
    response = client.post(
        "/auth/register", json={"email": "TAKEN@example.com", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["type"] == "email_taken"


def test_registration_can_be_closed(database_url):
    closed = create_app(test_settings(database_url, allow_registration=False))
    response = closed.test_client().post(
        "/auth/register", json={"email": "x@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert response.get_json()["error"]["type"] == "registration_closed"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ({}, 422),
        ({"email": "a@example.com"}, 422),
        ({"email": "no-at-sign", "password": PASSWORD}, 422),
        ({"email": "a" * 250 + "@example.com", "password": PASSWORD}, 422),
        ({"email": "a@example.com", "password": "short"}, 422),
        ({"email": "a@example.com", "password": "p" * 300}, 422),
        ({"email": 42, "password": PASSWORD}, 422),
        ({"email": "a@example.com", "password": ["x"] * 12}, 422),
        ({"email": "a@example.com", "password": PASSWORD, "role": "admin"}, 422),
    ],
)
def test_bad_registration_input_is_refused_and_nothing_is_stored(client, app, body, status):
    if isinstance(body, str):
        response = client.post("/auth/register", data=body, content_type="application/json")
    else:
        response = client.post("/auth/register", json=body)
    assert response.status_code == status
    assert "error" in response.get_json()
    assert user_count(app) == 0


def test_login_returns_oauth2_shaped_tokens(client, app):
    account = create_account(app)
    response = login(client, account.email)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    me = client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.get_json()["email"] == account.email


def test_unknown_email_and_wrong_password_get_the_same_answer(client, app):
    account = create_account(app)
    wrong_password = login(client, account.email, "not the password at all")
    unknown_email = login(client, "nobody@example.com", "not the password at all")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.get_json() == unknown_email.get_json()


def test_token_identity_is_a_string_and_claims_are_pinned(client, app):
    account = create_account(app)
    token = login(client, account.email).get_json()["access_token"]
    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, TEST_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert header["alg"] == "HS256"
    assert claims["sub"] == str(account.id)
    assert (claims["iss"], claims["aud"]) == (ISSUER, AUDIENCE)


# --- refresh, logout, revocation ----------------------------------------------------------


def test_refresh_rotates_the_pair_and_revokes_the_old_refresh_token(client, app):
    account = create_account(app)
    tokens = login(client, account.email).get_json()
    refreshed = client.post("/auth/refresh", headers=bearer(tokens["refresh_token"]))
    assert refreshed.status_code == 200
    new = refreshed.get_json()
    assert client.get("/auth/me", headers=bearer(new["access_token"])).status_code == 200
    again = client.post("/auth/refresh", headers=bearer(tokens["refresh_token"]))
    assert again.status_code == 401


def test_logout_revokes_access_and_refresh_tokens(client, app):
    account = create_account(app)
    tokens = login(client, account.email).get_json()
    response = client.post(
        "/auth/logout",
        headers=bearer(tokens["access_token"]),
        json={"refresh_token": tokens["refresh_token"]},
    )
    assert response.status_code == 204
    revoked_me = client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert revoked_me.status_code == 401
    assert revoked_me.get_json()["error"]["message"] == "The token has been revoked."
    assert client.post("/auth/refresh", headers=bearer(tokens["refresh_token"])).status_code == 401


def test_expired_revocations_are_purged(client, app):
    account = create_account(app)
    with app.app_context():
        db.session.add(
            RevokedToken(jti="old", token_type="access", user_id=account.id, expires_at=_past())
        )
        db.session.commit()
    tokens = login(client, account.email).get_json()
    client.post("/auth/logout", headers=bearer(tokens["access_token"]))
    with app.app_context():
        assert db.session.get(RevokedToken, "old") is None


def _past():
    from gateway.models import utcnow

    return utcnow() - timedelta(hours=1)


# --- every auth failure is a 401 envelope --------------------------------------------------


def _forged(app, account, *, key=TEST_SECRET, algorithm="HS256", **claims):
    now = int(time.time())
    payload = {
        "sub": str(account.id),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "fresh": False,
        "iss": ISSUER,
        "aud": AUDIENCE,
        **claims,
    }
    return pyjwt.encode(payload, key, algorithm=algorithm)


def _tamper(token: str) -> str:
    head, payload, signature = token.split(".")
    return ".".join([head, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])


BAD_CREDENTIALS = {
    "missing": lambda app, acc: {},
    "not bearer": lambda app, acc: {"Authorization": "Token abc"},
    "empty bearer": lambda app, acc: {"Authorization": "Bearer "},
    "garbage": lambda app, acc: bearer("not.a.jwt"),
    "expired": lambda app, acc: bearer(_forged(app, acc, exp=int(time.time()) - 10)),
    "tampered": lambda app, acc: bearer(_tamper(_forged(app, acc))),
    "other secret": lambda app, acc: bearer(_forged(app, acc, key="another-secret-" + "y" * 40)),
    "alg none": lambda app, acc: bearer(_forged(app, acc, key=None, algorithm="none")),
    "refresh as access": lambda app, acc: bearer(_forged(app, acc, type="refresh")),
    "wrong audience": lambda app, acc: bearer(_forged(app, acc, aud="someone-else")),
    "wrong issuer": lambda app, acc: bearer(_forged(app, acc, iss="someone-else")),
    "unknown user": lambda app, acc: bearer(_forged(app, acc, sub=str(uuid.uuid4()))),
    "bad api key": lambda app, acc: bearer("mgw_" + "x" * 43),
}


@pytest.mark.parametrize("case", list(BAD_CREDENTIALS))
def test_every_auth_failure_is_a_401_envelope(client, app, case):
    account = create_account(app)
    response = client.get("/auth/me", headers=BAD_CREDENTIALS[case](app, account))
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"]["type"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_well_forged_token_is_accepted_so_the_failures_above_are_real(client, app):
    account = create_account(app)
    assert client.get("/auth/me", headers=bearer(_forged(app, account))).status_code == 200


def test_expired_token_minted_by_the_gateway_is_rejected(client, app):
    account = create_account(app)
    with app.app_context():
        user = db.session.get(User, account.id)
        headers = auth_headers(user, expires_delta=timedelta(seconds=-1))
    response = client.get("/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == "The token has expired."


# --- API keys -----------------------------------------------------------------------------


def test_api_key_create_use_list_revoke(client, app):
    account = create_account(app)
    created = client.post("/auth/keys", headers=account.headers, json={"name": "ci"})
    assert created.status_code == 201
    key = created.get_json()
    secret = key["key"]
    assert secret.startswith("mgw_") and key["prefix"] == secret[:12]

    assert client.get("/auth/me", headers=bearer(secret)).get_json()["email"] == account.email
    listed = client.get("/auth/keys", headers=account.headers).get_json()["keys"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert "key" not in listed[0]
    assert listed[0]["last_used_at"] is not None

    assert client.delete(f"/auth/keys/{key['id']}", headers=account.headers).status_code == 204
    assert client.get("/auth/me", headers=bearer(secret)).status_code == 401
    assert client.get("/auth/keys", headers=account.headers).get_json()["keys"] == []


def test_api_key_is_stored_only_as_a_hash(client, app):
    account = create_account(app)
    secret = client.post("/auth/keys", headers=account.headers, json={"name": "x"}).get_json()[
        "key"
    ]
    with app.app_context():
        row = db.session.scalar(select(ApiKey).where(ApiKey.user_id == account.id))
        stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert secret not in stored
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()


def test_expired_api_key_is_rejected(client, app):
    account = create_account(app)
    secret = client.post(
        "/auth/keys", headers=account.headers, json={"name": "x", "expires_in_days": 1}
    ).get_json()["key"]
    with app.app_context():
        row = db.session.scalar(select(ApiKey).where(ApiKey.user_id == account.id))
        row.expires_at = _past()
        db.session.commit()
    assert client.get("/auth/me", headers=bearer(secret)).status_code == 401


# --- ownership and roles ------------------------------------------------------------------


def _owned_objects(app, client, owner):
    """One object of the owner's per owned route; extend when a route with an id is added."""
    key_id = client.post("/auth/keys", headers=owner.headers, json={"name": "k"}).get_json()["id"]
    conversation = f"/conversations/{create_conversation(app, owner)}"
    return {
        "/auth/keys/<uuid:key_id>": [("DELETE", f"/auth/keys/{key_id}", None)],
        "/conversations/<uuid:conversation_id>": [
            ("GET", conversation, None),
            ("PATCH", conversation, {"title": "mine now"}),
            ("DELETE", conversation, None),
        ],
        "/conversations/<uuid:conversation_id>/export": [
            ("GET", f"{conversation}/export?format=json", None),
            ("GET", f"{conversation}/export?format=markdown", None),
        ],
    }


def test_another_users_objects_answer_404_on_every_owned_route(client, app):
    owner, intruder = create_account(app), create_account(app)
    owned = _owned_objects(app, client, owner)
    id_rules = {r.rule for r in app.url_map.iter_rules() if "<uuid:" in r.rule}
    assert id_rules == set(owned), "every route with an id needs an ownership case here"
    for cases in owned.values():
        for method, url, body in cases:
            response = client.open(url, method=method, headers=intruder.headers, json=body)
            assert response.status_code == 404, (method, url)
            assert response.get_json()["error"]["type"] == "not_found"
    # ...and the owner still has everything, untouched.
    for cases in owned.values():
        method, url, _ = cases[0]
        if method == "GET":
            assert client.get(url, headers=owner.headers).status_code == 200, url
    assert client.get("/auth/keys", headers=intruder.headers).get_json()["keys"] == []
    assert client.get("/conversations", headers=intruder.headers).get_json()["conversations"] == []
    assert len(client.get("/auth/keys", headers=owner.headers).get_json()["keys"]) == 1


# Values for the admin routes' parameters: objects that exist in the test app.
ROUTE_VALUES = {"name": "time"}


def _admin_rules(app):
    return [
        rule
        for rule in app.url_map.iter_rules()
        if getattr(app.view_functions[rule.endpoint], "admin_only", False)
    ]


def test_users_get_403_on_every_admin_route_and_admins_get_through(client, app):
    user, admin = create_account(app), create_account(app, role="admin")
    rules = _admin_rules(app)
    assert rules, "the URL map should have admin routes"
    for rule in rules:
        method = sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        url = rule.build(ROUTE_VALUES, append_unknown=False)[1]
        response = client.open(url, method=method, headers=user.headers)
        assert response.status_code == 403, url
        assert response.get_json()["error"]["type"] == "forbidden"
        assert client.open(url, method=method, headers=admin.headers).status_code < 400, url


def test_admin_user_list_shows_accounts(client, app):
    admin = create_account(app, role="admin")
    create_account(app, email="someone@example.com")
    emails = {
        u["email"] for u in client.get("/admin/users", headers=admin.headers).get_json()["users"]
    }
    assert {"someone@example.com", admin.email} <= emails


def test_create_admin_command_with_password_file(app, tmp_path):
    password_file = tmp_path / "pw"
    password_file.write_text("a very long admin password\n")
    result = app.test_cli_runner().invoke(
        args=["create-admin", "root@example.com", "--password-file", str(password_file)]
    )
    assert result.exit_code == 0, result.output
    client = app.test_client()
    tokens = login(client, "root@example.com", "a very long admin password").get_json()
    assert (
        client.get("/auth/me", headers=bearer(tokens["access_token"])).get_json()["role"] == "admin"
    )


def test_admin_from_environment_is_created_at_start_up(database_url, app):
    configured = create_app(
        test_settings(
            database_url, admin_email="boss@example.com", admin_password="boss password 123"
        )
    )
    bootstrap_accounts(configured)
    client = configured.test_client()
    tokens = login(client, "boss@example.com", "boss password 123").get_json()
    assert (
        client.get("/auth/me", headers=bearer(tokens["access_token"])).get_json()["role"] == "admin"
    )


# --- mock auth ----------------------------------------------------------------------------


def test_mock_auth_in_development(database_url, app, caplog):
    dev = create_app(test_settings(database_url, environment="development"))
    with caplog.at_level("INFO"):
        bootstrap_accounts(dev)
    assert "✅ Mock user created for development" in caplog.text
    client = dev.test_client()
    assert client.get("/auth/me").get_json()["email"] == "dev@localhost"
    tokens = client.post("/auth/dev-token").get_json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    # The dev token is a real signed token: it works where mock auth is off too.
    assert (
        app.test_client().get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 200
    )


@pytest.mark.parametrize("environment", ["test", "production"])
def test_mock_auth_is_absent_outside_development(database_url, environment):
    # Production needs a provider that can answer; the offline one will do here.
    app = create_app(test_settings(database_url, environment=environment, llm_allow_offline=True))
    assert "/auth/dev-token" not in {r.rule for r in app.url_map.iter_rules()}
    client = app.test_client()
    assert client.post("/auth/dev-token").status_code == 404
    assert client.get("/auth/me").status_code == 401


# --- login throttling ---------------------------------------------------------------------


def test_repeated_failures_lock_the_account_with_retry_after(client, app):
    account = create_account(app)
    for _ in range(5):
        assert login(client, account.email, "wrong password!").status_code == 401
    locked = login(client, account.email)  # even the right password, while locked
    assert locked.status_code == 429
    assert locked.get_json()["error"]["type"] == "too_many_login_attempts"
    assert 1 <= int(locked.headers["Retry-After"]) <= 300
    other = create_account(app)
    assert login(client, other.email).status_code == 200  # the address still has room


PARALLEL = 8


@pytest.mark.slow
def test_throttling_is_shared_by_two_gunicorn_workers(make_database):
    limit = 10
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": make_database(),
        "JWT_SECRET_KEY": TEST_SECRET,
        "LOGIN_MAX_FAILURES": str(limit),
    }
    with gunicorn(env, workers=2) as server:
        wait_all_workers_serving(server, 2)
        email = "victim@example.com"
        registered = requests.post(
            server.url + "/auth/register", json={"email": email, "password": PASSWORD}, timeout=10
        )
        assert registered.status_code == 201

        def attempt(_: int) -> requests.Response:
            body = {"email": email, "password": "wrong password!"}
            return requests.post(server.url + "/auth/login", json=body, timeout=10)

        with ThreadPoolExecutor(PARALLEL) as pool:
            statuses = [r.status_code for r in pool.map(attempt, range(limit + 2 * PARALLEL))]
        locked = attempt(0)
        workers_counting = served_by(server, "POST", "/auth/login", 401)

    # Checks and counts race a little under concurrency; never by more than the parallelism.
    assert limit <= statuses.count(401) < limit + PARALLEL
    assert statuses.count(429) == len(statuses) - statuses.count(401)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert len(workers_counting) == 2, "failures should have been counted by both workers"
