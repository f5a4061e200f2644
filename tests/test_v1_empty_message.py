"""An empty user message on /v1 is the client's 400, never forwarded (issue 17.7)."""

from __future__ import annotations

import pytest

from gateway import create_app
from gateway.services import close_services
from tests.chat_setup import chat_settings
from tests.conftest import test_settings
from tests.factories import create_account


@pytest.fixture
def v1(database_url, fake, tmp_path, app):
    config = tmp_path / "none.json"
    config.write_text('{"mcpServers": {}}')
    chat = create_app(test_settings(database_url, **chat_settings(fake.url, config)))
    fake.reset()
    yield chat.test_client(), create_account(app)
    close_services(chat)


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": ""}],
        [{"role": "user", "content": "   \n"}],
        [{"role": "user", "content": [{"type": "text", "text": ""}]}],
        [
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "and now?"},
        ],
    ],
)
def test_an_empty_user_message_is_a_400_and_no_model_is_called(v1, fake, messages):
    client, account = v1
    response = client.post(
        "/v1/chat/completions",
        headers=account.headers,
        json={"model": "openai/gpt-test", "messages": messages},
    )
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert "messages." in error["message"]
    assert error["param"].startswith("messages[") and error["param"].endswith("].content")
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_value")
    assert fake.requests == []


def test_a_message_with_text_still_goes_through(v1, fake):
    client, account = v1
    response = client.post(
        "/v1/chat/completions",
        headers=account.headers,
        json={"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hello"}]},
    )
    assert response.status_code == 200
    assert len(fake.requests) == 1
