"""Chat through the deployed topology: nginx over two production gunicorns, one killed and back."""

from __future__ import annotations

import time

import pytest
import requests

from tests.chat_setup import chat_env, write_mcp_config
from tests.fakes.fake_llm import FakeLLM, call_tool, reply
from tests.live_server import free_port, gunicorn
from tests.nginx import FAIL_TIMEOUT_SECONDS, nginx
from tests.topology import kill_instance, production_env, started_together

pytestmark = pytest.mark.slow

PASSWORD = "a long passphrase"


def _login(base: str, email: str) -> dict[str, str]:
    registered = requests.post(
        f"{base}/auth/register", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert registered.status_code == 201, registered.text
    tokens = requests.post(
        f"{base}/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert tokens.status_code == 200, tokens.text
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def test_register_login_chat_and_stream_through_nginx_survive_an_instance_dying(
    make_database, tmp_path
):
    with FakeLLM(chunk_delay=0.1) as fake:
        env = {
            **production_env(make_database(), tmp_path / "secrets"),
            **chat_env(fake.url, write_mcp_config(tmp_path)),
        }
        ports = [free_port(), free_port()]
        servers = [gunicorn(env, workers=1, threads=4, port=port) for port in ports]
        with started_together(servers) as gateways:
            upstreams = [g.url.removeprefix("http://") for g in gateways]
            with nginx(upstreams, tmp_path / "nginx") as proxy:
                headers = _login(proxy.url, "ada@example.com")

                fake.script(call_tool("calc__add", {"a": 19, "b": 23}), reply("It is 42."))
                answer = requests.post(
                    f"{proxy.url}/chat",
                    headers=headers,
                    json={"message": "add 19 and 23"},
                    timeout=30,
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["message"]["content"] == "It is 42."
                assert answer.json()["tool_calls"][0]["summary"] == "42"

                # A streamed answer arrives as it is produced, not in one piece at the end.
                words = " ".join(f"w{i}" for i in range(20))
                fake.script(reply(words))
                started, arrivals = time.monotonic(), []
                with requests.post(
                    f"{proxy.url}/chat",
                    headers=headers,
                    json={"message": "stream me some words", "stream": True},
                    stream=True,
                    timeout=30,
                ) as stream:
                    for line in stream.iter_lines():
                        if line.startswith(b"event: delta"):
                            arrivals.append(time.monotonic() - started)
                assert len(arrivals) >= 8
                assert arrivals[-1] - arrivals[0] > 0.5, arrivals

                # One instance dies: everything keeps working through the other.
                kill_instance(gateways[0])
                for n in range(5):
                    fake.script(reply(f"still here {n}"))
                    response = requests.post(
                        f"{proxy.url}/chat",
                        headers=headers,
                        json={"message": f"ping {n}"},
                        timeout=30,
                    )
                    assert response.status_code == 200, response.text

                # It comes back on its port and nginx sends it work again once the failed
                # server's fail_timeout has passed (nginx does not try it before then,
                # however many requests arrive).
                with gunicorn(env, workers=1, threads=4, port=ports[0]) as revived:
                    deadline = time.monotonic() + FAIL_TIMEOUT_SECONDS + 15
                    n, served = 0, False
                    while not served and time.monotonic() < deadline:
                        n += 1
                        headers_n = {**headers, "X-Request-ID": f"rejoin-{n}"}
                        me = requests.get(f"{proxy.url}/auth/me", headers=headers_n, timeout=10)
                        assert me.status_code == 200, me.text
                        served = f"[rejoin-{n}]" in revived.log()
                        time.sleep(0.2)
                    assert served, f"the restarted instance got none of {n} requests"
