"""Added latency of our provider + agent loop over a bare SDK call, against the fake upstream.

Run: ``python -m bench.llm_overhead [--calls 200]``. The fake runs as a subprocess so it does
not share our GIL. Calls alternate between the two paths so drift affects both alike.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import anthropic
import openai

from gateway.agent import complete_turn, run_turn
from gateway.llm import ChatRequest, LLMRegistry, LLMSettings, Message

PROMPT = "Say hello in five words."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    with _fake_upstream() as url:
        settings = LLMSettings(
            anthropic_api_key="bench",
            anthropic_base_url=url,
            anthropic_model="claude-bench",
            openai_api_key="bench",
            openai_base_url=f"{url}/v1",
            openai_model="gpt-bench",
            max_retries=0,
            timeout=10,
        )
        registry = LLMRegistry(settings)
        bare_anthropic = anthropic.Anthropic(api_key="bench", base_url=url, max_retries=0)
        bare_openai = openai.OpenAI(api_key="bench", base_url=f"{url}/v1", max_retries=0)
        request = ChatRequest(messages=(Message.user(PROMPT),), max_tokens=64)

        def no_tool(call):
            raise AssertionError("no tools in this benchmark")

        paths: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "anthropic complete": (
                lambda: bare_anthropic.messages.create(
                    model="claude-bench",
                    max_tokens=64,
                    messages=[{"role": "user", "content": PROMPT}],
                ),
                lambda: complete_turn(registry.get("anthropic"), request, no_tool),
            ),
            "openai complete": (
                lambda: bare_openai.chat.completions.create(
                    model="gpt-bench",
                    max_tokens=64,
                    messages=[{"role": "user", "content": PROMPT}],
                ),
                lambda: complete_turn(registry.get("openai"), request, no_tool),
            ),
            "anthropic first token": (
                lambda: _first(
                    e
                    for e in bare_anthropic.messages.create(
                        model="claude-bench",
                        max_tokens=64,
                        messages=[{"role": "user", "content": PROMPT}],
                        stream=True,
                    )
                    if e.type == "content_block_delta"
                ),
                lambda: _first(
                    e
                    for e in run_turn(registry.get("anthropic"), request, no_tool)
                    if e.type == "text_delta"
                ),
            ),
            "openai first token": (
                lambda: _first(
                    c
                    for c in bare_openai.chat.completions.create(
                        model="gpt-bench",
                        max_tokens=64,
                        messages=[{"role": "user", "content": PROMPT}],
                        stream=True,
                    )
                    if c.choices and c.choices[0].delta.content
                ),
                lambda: _first(
                    e
                    for e in run_turn(registry.get("openai"), request, no_tool)
                    if e.type == "text_delta"
                ),
            ),
        }
        _say(f"{args.calls} calls per path after {args.warmup} warm-up calls; ms")
        columns = ("bare p50", "ours p50", "added", "bare p90", "ours p90")
        _say(f"{'path':24} " + " ".join(f"{c:>9}" for c in columns))
        for name, (bare, ours) in paths.items():
            for _ in range(args.warmup):
                bare(), ours()
            bare_ms, ours_ms = [], []
            for _ in range(args.calls):
                bare_ms.append(_timed(bare))
                ours_ms.append(_timed(ours))
            b50, o50 = statistics.median(bare_ms), statistics.median(ours_ms)
            b90, o90 = _p90(bare_ms), _p90(ours_ms)
            figures = (b50, o50, o50 - b50, b90, o90)
            _say(f"{name:24} " + " ".join(f"{f:9.2f}" for f in figures))
        bare_anthropic.close()
        bare_openai.close()
        registry.close()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _first(iterator) -> object:
    """Time to first token: take one item, then close the stream like a hung-up client."""
    item = next(iter(iterator))
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
    return item


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


class _fake_upstream:
    """The fake LLM server as a subprocess on a free loopback port."""

    def __enter__(self) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.fake_llm", "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{url}/_requests", timeout=1).close()
                return url
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(5)


if __name__ == "__main__":
    main()
