"""`make run`'s configuration: development mode on the embedded PostgreSQL, as a new user meets it.

Each test here was a failure a new user hit when `make run` used SQLite (naive datetimes
compared with aware ones answered 500); the database is now PostgreSQL everywhere.
"""

from __future__ import annotations

import os
import socket

import pytest
import requests

from gateway import create_app
from gateway.auth.users import bootstrap_accounts
from gateway.embedded_postgres import LOCK_FILE, running_url
from tests.conftest import test_settings
from tests.factories import PASSWORD, create_account
from tests.live_server import ROOT, free_port, gunicorn, gunicorn_start_up


@pytest.fixture
def dev_client(database_url, app):
    dev = create_app(test_settings(database_url, environment="development"))
    bootstrap_accounts(dev)
    return dev.test_client()


def test_a_failed_login_then_a_good_one_answers_200(dev_client, app):
    account = create_account(app)
    wrong = dev_client.post("/auth/login", json={"email": account.email, "password": "nope" * 3})
    assert wrong.status_code == 401
    good = dev_client.post("/auth/login", json={"email": account.email, "password": PASSWORD})
    assert good.status_code == 200, good.get_json()
    # Another account from the same address is not affected either.
    other = create_account(app)
    again = dev_client.post("/auth/login", json={"email": other.email, "password": PASSWORD})
    assert again.status_code == 200, again.get_json()


def _new_key(client, account, **options) -> str:
    response = client.post("/auth/keys", json={"name": "cli", **options}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


def test_an_api_key_works_three_times_in_a_row(dev_client, app):
    account = create_account(app)
    key = _new_key(dev_client, account)
    for _ in range(3):
        me = dev_client.get("/auth/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200, me.get_json()
        assert me.get_json()["email"] == account.email


def test_an_api_key_with_expires_in_days_works_at_once(dev_client, app):
    account = create_account(app)
    key = _new_key(dev_client, account, expires_in_days=30)
    me = dev_client.get("/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200, me.get_json()


def _run_env(instance: str) -> dict[str, str]:
    """`make run`'s environment: development, no DATABASE_URL, state under ``instance``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_URL_FILE")}
    env.update(
        ENVIRONMENT="development",
        INSTANCE_PATH=instance,
        MCP_CONFIG=str(ROOT / "tests" / "fixtures" / "mcp_none.json"),
        ROUTING_SEMANTIC="false",
    )
    return env


def test_make_run_keeps_conversations_in_its_embedded_postgresql_across_restarts(tmp_path):
    instance = str(tmp_path / "instance")
    env = _run_env(instance)
    # A clean stop includes PostgreSQL's shutdown checkpoint: give it time on a loaded machine.
    with gunicorn(env, workers=1, stop_timeout=120, start_timeout=180) as server:
        posted = requests.post(server.url + "/chat", json={"message": "hello there"}, timeout=60)
        assert posted.status_code == 200, posted.text
        conversation = posted.json()["conversation_id"]
        assert running_url(instance) is not None  # PostgreSQL, under instance/
        # A second gateway on the same folder is refused in one line, whatever its port.
        second = gunicorn_start_up({**env, "BIND": f"127.0.0.1:{free_port()}"}, timeout=180)
        assert second.returncode != 0
        refusal = [line for line in second.stderr.splitlines() if "start-up failed" in line]
        assert len(refusal) == 1 and "in use by another gateway" in refusal[0], second.stderr
    assert running_url(instance) is None  # stopped with the gateway
    with gunicorn(env, workers=1, start_timeout=180) as server:
        listed = requests.get(server.url + "/conversations", timeout=30).json()
        assert conversation in [c["id"] for c in listed["conversations"]]


def test_the_embedded_server_listens_on_a_unix_socket_only(tmp_path):
    instance = tmp_path / "instance"
    with gunicorn(_run_env(str(instance)), workers=1, start_timeout=180):
        settings = (instance / "postgres" / "postmaster.pid").read_text().splitlines()
        assert settings[5].strip() == ""  # listen_addresses: no TCP address at all
        assert (instance / LOCK_FILE).read_text().strip().isdigit()


def test_a_taken_port_is_one_line_naming_it_and_how_to_choose_another(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {**_run_env(str(tmp_path / "instance")), "BIND": f"127.0.0.1:{port}"}
        result = gunicorn_start_up(env, timeout=180)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in errors[0]
    assert f"BIND=127.0.0.1:{port + 1} make run" in errors[0]
    assert "Connection in use" not in result.stderr
    assert not (tmp_path / "instance" / "postgres").exists()  # refused before starting anything
