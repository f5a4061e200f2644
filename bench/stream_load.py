# ruff: noqa: E501, C901  (a benchmark driver: long table rows, one long main loop)
"""Load client for Server-Sent Events chat endpoints: time to first token and gaps between tokens.

Standard library only (asyncio, raw HTTP/1.1 with keep-alive). Two modes:

* closed loop (default): C connections send the same POST again and again for D seconds;
* ``--once``: C connections each open one stream (started over ``--ramp`` seconds) and hold it
  to the end; this is how 1,000 concurrent streams are held open.

A "token" is an SSE event carrying text: an OpenAI chunk with non-empty ``delta.content``, or
the gateway's own ``event: delta``. Per stream it records TTFB, TTFT, total time and the gaps
between consecutive tokens; it prints one line ``BENCH_JSON {...}`` with counts and
percentiles in milliseconds, and the number of streams whose largest gap exceeded
``--stall-ms``.

Adapted from the shared peers harness (``stream_client.py``), with gap tracking and ``--once``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from urllib.parse import urlsplit

TEXT_RE = re.compile(rb'"content"\s*:\s*"(?:[^"\\]|\\.)')


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q / 100.0
    f = int(k)
    c = min(f + 1, len(values) - 1)
    return values[f] + (values[c] - values[f]) * (k - f)


class Stats:
    def __init__(self) -> None:
        self.ok = self.errors = self.status_errors = self.no_text = self.stalled = 0
        self.last_error = ""
        self.ttfb: list[float] = []
        self.ttft: list[float] = []
        self.total: list[float] = []
        self.gaps: list[float] = []
        self.max_gaps: list[float] = []
        self.tokens = 0


_serial = iter(range(10**12))


def fill(payload: bytes) -> bytes:
    """Every request its own prompt: ``@N@`` in the body becomes a unique number."""
    if b"@N@" not in payload:
        return payload
    head, _, body = payload.partition(b"\r\n\r\n")
    body = body.replace(b"@N@", str(next(_serial)).encode())
    head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % len(body), head)
    return head + b"\r\n\r\n" + body


async def one(reader, writer, payload: bytes, timeout: float):
    """One request on an open connection: (status, ttfb, token times, total, keep-alive)."""
    payload = fill(payload)
    t0 = time.perf_counter()
    writer.write(payload)
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), timeout)
    if not line:
        raise ConnectionError("closed before status line")
    ttfb = time.perf_counter() - t0
    status = int(line.split()[1])
    headers = {}
    while True:
        h = await asyncio.wait_for(reader.readline(), timeout)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    keep = headers.get("connection", "").lower() != "close"
    tokens: list[float] = []
    pending = b""
    event = b""

    def feed(data: bytes) -> None:
        nonlocal pending, event
        now = time.perf_counter() - t0
        pending += data
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            raw = raw.rstrip(b"\r")
            if not raw:
                event = b""
            elif raw.startswith(b"event:"):
                event = raw[6:].strip()
            elif raw.startswith(b"data:") and (event == b"delta" or TEXT_RE.search(raw)):
                tokens.append(now)

    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            size_line = await asyncio.wait_for(reader.readline(), timeout)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await asyncio.wait_for(reader.readline(), timeout)) not in (
                    b"\r\n",
                    b"\n",
                    b"",
                ):
                    pass
                break
            data = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
            feed(data[:-2])
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while n > 0:
            data = await asyncio.wait_for(reader.read(min(n, 65536)), timeout)
            if not data:
                raise ConnectionError("short body")
            n -= len(data)
            feed(data)
    else:
        keep = False
        while True:
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                break
            feed(data)
    return status, ttfb, tokens, time.perf_counter() - t0, keep


async def worker(url, payload, deadline, timeout, stats: Stats, stall_s, once, start_delay):
    u = urlsplit(url)
    if start_delay:
        await asyncio.sleep(start_delay)
    reader = writer = None
    while once or time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(u.hostname, u.port or 80)
            status, ttfb, tokens, total, keep = await one(reader, writer, payload, timeout)
        except (
            TimeoutError,
            OSError,
            ConnectionError,
            ValueError,
            IndexError,
            asyncio.IncompleteReadError,
        ) as exc:
            stats.errors += 1
            stats.last_error = repr(exc)[:200]
            if writer is not None:
                writer.close()
            reader = writer = None
            if once:
                break
            await asyncio.sleep(0.05)
            continue
        if not once and time.perf_counter() > deadline:
            break
        if 200 <= status < 300:
            stats.ok += 1
            stats.ttfb.append(ttfb)
            stats.total.append(total)
            if tokens:
                stats.tokens += len(tokens)
                stats.ttft.append(tokens[0])
                gaps = [b - a for a, b in zip(tokens, tokens[1:], strict=False)]
                stats.gaps.extend(gaps)
                biggest = max(gaps, default=0.0)
                stats.max_gaps.append(biggest)
                if biggest > stall_s:
                    stats.stalled += 1
            else:
                stats.no_text += 1
        else:
            stats.status_errors += 1
            stats.last_error = f"HTTP {status}"
        if not keep:
            writer.close()
            reader = writer = None
        if once:
            break
    if writer is not None:
        writer.close()


async def run(url, body, headers, c, duration, timeout, stall_ms, once, ramp):
    u = urlsplit(url)
    path = (u.path or "/") + (("?" + u.query) if u.query else "")
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {u.netloc}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    payload = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    stats = Stats()
    t0 = time.perf_counter()
    deadline = t0 + duration
    await asyncio.gather(
        *(
            worker(
                url,
                payload,
                deadline,
                timeout,
                stats,
                stall_ms / 1e3,
                once,
                ramp * i / c if once else 0,
            )
            for i in range(c)
        )
    )
    elapsed = time.perf_counter() - t0
    out = {
        "connections": c,
        "once": once,
        "duration_s": round(elapsed, 3),
        "ok": stats.ok,
        "errors": stats.errors,
        "status_errors": stats.status_errors,
        "no_text": stats.no_text,
        "stalled": stats.stalled,
        "tokens": stats.tokens,
        "rps": round(stats.ok / (elapsed if once else duration), 2),
    }
    if stats.last_error:
        out["last_error"] = stats.last_error
    for name in ("ttfb", "ttft", "total", "gaps", "max_gaps"):
        for q in (50, 90, 99, 100):
            v = pct(getattr(stats, name), q)
            out[f"{name}_p{q}_ms"] = None if v is None else round(v * 1e3, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("url")
    ap.add_argument("--body", required=True, help="file with the JSON request body")
    ap.add_argument("-H", "--header", action="append", default=[])
    ap.add_argument("-c", "--connections", type=int, default=20)
    ap.add_argument("-d", "--duration", type=float, default=15)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument(
        "--stall-ms", type=float, default=1e9, help="a larger gap counts the stream as stalled"
    )
    ap.add_argument(
        "--once", action="store_true", help="one stream per connection, held to the end"
    )
    ap.add_argument(
        "--ramp", type=float, default=0.0, help="with --once: start streams over this many seconds"
    )
    a = ap.parse_args()
    with open(a.body, "rb") as f:
        body = f.read()
    out = asyncio.run(
        run(a.url, body, a.header, a.connections, a.duration, a.timeout, a.stall_ms, a.once, a.ramp)
    )
    sys.stdout.write("BENCH_JSON " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
