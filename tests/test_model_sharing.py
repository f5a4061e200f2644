"""Routing models loaded once in the gunicorn master and shared by its forked workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import requests

from gateway.routing.encoders import preload_models
from gateway.routing.settings import RoutingSettings
from tests.chat_setup import chat_env, write_mcp_config
from tests.conftest import TEST_SECRET
from tests.fakes.fake_llm import FakeLLM, reply
from tests.live_server import ROOT, bearer_headers, gunicorn

TEXTS = ["What time is it in Tokyo?", "¿Qué hora es en Tokio?", "東京は今何時ですか？"]


# Loads what the master loads, forks, and has the child encode and exit the normal way (exit
# handlers and C++ static destructors run, as in a gunicorn worker); prints the exit status and
# whether the child's vectors equal the parent's.
FORK_PROGRAM = """
import os, sys
import numpy as np
from gateway.routing.encoders import (
    first_stage_encoder, local_encoder, multilingual_encoder, preload_models,
)
from gateway.routing.settings import RoutingSettings

settings = RoutingSettings()
print("loaded", ",".join(preload_models(settings)), flush=True)
texts = sys.argv[1:]
def encode_all():
    models = [local_encoder(settings.local_model), first_stage_encoder(settings)]
    models.append(multilingual_encoder())
    return np.hstack([m.encode(texts, query=True) for m in models])
path = os.path.join(os.environ["OUT"], "child.npy")
pid = os.fork()
if pid == 0:
    np.save(path, encode_all())  # MiniLM is loaded here, in the child, as in a worker
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("status", status, flush=True)
print("same", bool(np.allclose(np.load(path), encode_all(), atol=1e-5)), flush=True)
"""


def test_models_loaded_before_a_fork_encode_the_same_and_exit_cleanly(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK_PROGRAM, *TEXTS],
        cwd=ROOT,
        env={**os.environ, "OUT": str(tmp_path), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,  # a child stuck in a library's exit handlers never ends
    )
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert done.returncode == 0, done.stderr[-2000:]
    # The numpy models only: an inherited onnxruntime session hangs or aborts at the child's exit.
    assert lines["loaded"] == "wordllama-l2-supercat-256,use-multilingual-v3"
    assert lines["status"] == "0", done.stderr[-2000:]
    assert lines["same"] == "True"


def test_lexical_routing_or_an_endpoint_loads_no_local_model() -> None:
    assert preload_models(RoutingSettings(semantic=False)) == []
    endpoint = RoutingSettings(semantic_backend="endpoint", embeddings_url="http://127.0.0.1:9")
    assert preload_models(endpoint) == []


def test_gunicorn_workers_route_with_the_masters_models(make_database, tmp_path) -> None:
    with FakeLLM() as fake:
        fake.script(*[reply("ok") for _ in range(8)])
        env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": make_database(),
            "JWT_SECRET_KEY": TEST_SECRET,
            **chat_env(fake.url, write_mcp_config(tmp_path), ROUTING_SEMANTIC="true"),
            "CHAT_MAX_CONCURRENT": "0",
        }
        with gunicorn(env, workers=2, threads=4) as server:
            auth = bearer_headers(server, "sharer@example.com")
            prompts = ["add 2 and 40 please", "suma dos y cuarenta, por favor"] * 4

            def chat(prompt: str) -> int:
                message = {"message": prompt}
                return requests.post(
                    server.url + "/chat", headers=auth, json=message, timeout=60
                ).status_code

            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(chat, prompts))
            # Stopped here so that the workers' exits are in the log too.
            server.process.terminate()
            server.process.wait(timeout=60)
            log = server.log()
    assert statuses == [200] * len(prompts), log
    assert "routing models loaded before fork: " in log
    # The workers warm up with the inherited models: no worker loads one of its own.
    assert "cannot prepare the MiniLM model" not in log
    assert "terminate called" not in log and "SIGABRT" not in log
    routed = re.findall(r"\[(\d+)\] gateway\.routing\.decision: .* → calc", log)
    assert len(routed) == len(prompts), log
