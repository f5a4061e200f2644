# ruff: noqa: E501, C901  (a benchmark driver: long table rows, one long main loop)
"""tool-turn: what the gateway adds to one MCP tool call of a chat turn, on an open stdio session.

Run from the repo root: ``.venv/bin/python -m bench.tool_turn [--calls 300] [--rounds 3]``.
Both sides call mcp-server-time's ``get_current_time`` (the server ``make bench`` configures),
each on its own warm session: the SDK directly from asyncio, and ``MCPHub.call_tool`` from a
request thread as ``gateway.chat.service`` does. Blocks of calls alternate between the two so
that drift affects both alike; the added latency is the median over rounds of the difference
of the medians (as ``bench/mcp_overhead.py``, with the real server).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from bench.mcp_endpoint import Session, direct_client
from gateway.mcp import MCPHub, parse_mcp_config

ARGS = ["-m", "mcp_server_time", "--local-timezone", "UTC"]
TOOL, ARGUMENTS = "get_current_time", {"timezone": "Asia/Tokyo"}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def hub_calls(hub: MCPHub, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        hub.call_tool("time", TOOL, dict(ARGUMENTS))
        samples.append(time.perf_counter() - start)
    return samples


def stats(samples: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[max(0, int(len(ms) * 0.99) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    hub = MCPHub(
        parse_mcp_config({"mcpServers": {"time": {"command": "python", "args": ARGS}}}, {}),
        first_use_wait=15,
    )
    # The same timed SDK session the /mcp benchmark uses, on mcp-server-time over stdio.
    direct = Session(direct_client, TOOL)
    rows = []
    try:
        hub.list_tools()
        hub_calls(hub, 50)
        direct.calls(50)
        say(
            f"{'round':>5} {'SDK p50':>9} {'hub p50':>9} {'added':>8} {'SDK p99':>9} {'hub p99':>9}   ms"
        )
        for rnd in range(1, args.rounds + 1):
            d_samples, h_samples = [], []
            for _ in range(10):  # alternate blocks within the round
                d_samples += direct.calls(args.calls // 10)
                h_samples += hub_calls(hub, args.calls // 10)
            (d50, d99), (h50, h99) = stats(d_samples), stats(h_samples)
            rows.append(
                {
                    "round": rnd,
                    "sdk_p50_ms": d50,
                    "hub_p50_ms": h50,
                    "sdk_p99_ms": d99,
                    "hub_p99_ms": h99,
                    "added_ms": h50 - d50,
                    "added_p99_ms": h99 - d99,
                }
            )
            say(f"{rnd:>5} {d50:9.3f} {h50:9.3f} {h50 - d50:+8.3f} {d99:9.3f} {h99:9.3f}")
    finally:
        direct.close()
        hub.close()
    result = {key: statistics.median(r[key] for r in rows) for key in rows[0] if key != "round"}
    say(
        f"median over rounds: added p50 {result['added_ms']:+.3f} ms, added p99 {result['added_p99_ms']:+.3f} ms"
    )
    say("BENCH_JSON " + json.dumps({**result, "rounds": rows}))


if __name__ == "__main__":
    main()
