"""Overhead of ``MCPHub.call_tool`` from a request thread vs the SDK on an open stdio session.

Run from the repo root: ``.venv/bin/python -m bench.mcp_overhead [--calls 1000]``.
Both sides call ``add`` on the same SDK-built test server (tests/fakes/mcp_server.py), each on
its own warm session; the difference of the medians is what the hub adds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

from gateway.mcp import MCPHub, parse_mcp_config

SERVER = str(Path(__file__).resolve().parent.parent / "tests" / "fakes" / "mcp_server.py")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def summary(label: str, samples: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples)
    median = statistics.median(ms)
    p99 = ms[int(len(ms) * 0.99) - 1]
    say(f"{label:<28} median {median:6.3f} ms   p90 {ms[int(len(ms) * 0.9)]:6.3f}   p99 {p99:6.3f}")
    return median, p99


async def direct(calls: int, mode: str) -> list[float]:
    params = StdioServerParameters(command=sys.executable, args=[SERVER])
    async with Client(params, mode=mode, cache=None, read_timeout_seconds=30) as client:
        await client.list_tools()
        for i in range(50):
            await client.call_tool("add", {"a": i, "b": 1})
        samples = []
        for i in range(calls):
            start = time.perf_counter()
            await client.call_tool("add", {"a": i, "b": 1})
            samples.append(time.perf_counter() - start)
    return samples


def via_hub(calls: int, mode: str) -> list[float]:
    entry = {"command": "python", "args": [SERVER], "protocol": mode}
    hub = MCPHub(parse_mcp_config({"mcpServers": {"bench": entry}}, {}), first_use_wait=15)
    try:
        hub.list_tools()
        for i in range(50):
            hub.call_tool("bench", "add", {"a": i, "b": 1})
        samples = []
        for i in range(calls):
            start = time.perf_counter()
            hub.call_tool("bench", "add", {"a": i, "b": 1})
            samples.append(time.perf_counter() - start)
    finally:
        hub.close()
    return samples


def main() -> None:
    """Measure both paths for both protocol eras and print the medians and their difference."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for mode in ("legacy", "auto"):
        for round_ in range(args.rounds):
            say(f"-- protocol mode {mode}, round {round_ + 1}")
            d_med, d_p99 = summary("SDK direct (asyncio)", asyncio.run(direct(args.calls, mode)))
            h_med, h_p99 = summary("hub.call_tool (thread)", via_hub(args.calls, mode))
            say(f"{'hub overhead':<28} median {h_med - d_med:+6.3f} ms   p99 {h_p99 - d_p99:+6.3f}")


if __name__ == "__main__":
    main()
