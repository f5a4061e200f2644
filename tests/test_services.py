"""The per-worker services: one per process, rebuilt after a fork, closed on the way out."""

from __future__ import annotations

import os
import warnings

import pytest

from gateway import create_app
from gateway.services import Services, close_services, get_services
from tests.conftest import test_settings


@pytest.fixture
def bare_app(database_url):
    app = create_app(test_settings(database_url, mcp_config="tests/fixtures/mcp_none.json"))
    yield app
    close_services(app)


def test_one_process_gets_one_services_object(bare_app):
    services = get_services(bare_app)
    assert isinstance(services, Services)
    assert get_services(bare_app) is services
    with bare_app.app_context():
        assert get_services() is services
    assert services.llm is services.llm  # built once
    assert services.settings.environment == "test"


def test_a_process_with_another_pid_builds_its_own(bare_app, monkeypatch):
    inherited = get_services(bare_app)
    registry = inherited.llm
    monkeypatch.setattr(os, "getpid", lambda: -1)
    child = get_services(bare_app)
    assert child is not inherited
    assert child.llm is not registry
    assert child.settings is inherited.settings  # settings are shared; only services are rebuilt


def test_services_are_rebuilt_in_a_forked_child(bare_app):
    parent = get_services(bare_app)
    read, write = os.pipe()
    with warnings.catch_warnings():
        # pytest's own threads make fork() warn; the child only answers and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child
        try:
            fresh = get_services(bare_app)
            answer = b"new" if fresh is not parent and get_services(bare_app) is fresh else b"old"
        except BaseException:
            answer = b"error"
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"new"
    assert get_services(bare_app) is parent


def test_closing_drops_the_services_and_the_next_use_builds_new_ones(bare_app):
    services = get_services(bare_app)
    hub = services.mcp
    close_services(bare_app)
    assert get_services(bare_app) is not services
    assert get_services(bare_app).mcp is not hub
