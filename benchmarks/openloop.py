"""An open-loop HTTP/1.1 load generator: requests leave on a fixed schedule, whatever the answers take.

    python -m benchmarks.openloop URL BODY_FILE RATE SECONDS OUT.json [Header: value ...]

ab and locust are closed loop (a client sends its next request after the last answer), so a slow server
lowers the rate they offer; locust on this 2-core box also could not offer more than ~200 req/s over TLS
(gevent; benchmarks/results/PROFILE.md, serving). Here request i leaves at t0 + i/RATE on an idle
keep-alive connection (or waits for one), and its time is counted from its scheduled start,
so time spent waiting in the client counts too (no coordinated omission). `send_lag_ms` says how late
requests left: near 0 means the offered rate was the scheduled one. The keep-alive connections (32, 2x nginx's upstream keep-alive pool) are
opened before the clock starts (TLS handshakes in Python cost more than the requests: opening one per
busy moment made the client the bottleneck). Standard library only, asyncio.
"""
from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response: (status, whether the connection stays open)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    await reader.readexactly(int(fields.get("content-length", "0")))
    return status, fields.get("connection", "").lower() != "close"


async def run(url: str, body: bytes, headers: list[str], rate: float, seconds: float,
              connections: int = 32, timeout: float = 60.0) -> list[tuple[float, int, float]]:
    """(ms from scheduled start to answer, status or 0 for no answer, ms the send left late) per request."""
    parts = urlsplit(url)
    ctx = ssl.create_default_context() if parts.scheme == "https" else None
    if ctx:  # the gateway's self-signed certificate
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    port = parts.port or (443 if ctx else 80)
    request = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
               + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode() + body
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    records: list[tuple[float, int, float]] = []

    async def connect() -> Conn:
        return await asyncio.open_connection(parts.hostname, port, ssl=ctx)

    for conn in await asyncio.gather(*(connect() for _ in range(connections))):  # handshakes off the clock
        pool.put_nowait(conn)

    async def one(scheduled: float) -> None:
        reader, writer = await pool.get()  # all busy: the request waits here, and that wait is counted
        lag = (loop.time() - scheduled) * 1000
        keep = False
        try:
            writer.write(request)
            status, keep = await asyncio.wait_for(_answer(reader), timeout)
            records.append(((loop.time() - scheduled) * 1000, status, lag))
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            records.append(((loop.time() - scheduled) * 1000, 0, lag))
        if keep:
            pool.put_nowait((reader, writer))
        else:  # closed by the server or broken: replace it, so the pool keeps its size
            writer.close()
            try:
                pool.put_nowait(await connect())
            except OSError:
                pass

    total, start = int(rate * seconds), loop.time() + 0.1
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        if scheduled > loop.time():
            await asyncio.sleep(scheduled - loop.time())
        tasks.append(asyncio.ensure_future(one(scheduled)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return records


def main(argv: list[str]) -> int:
    """CLI: write the records as JSON, print a one-line summary."""
    url, body, rate, seconds, out, *headers = argv
    started, cpu = time.perf_counter(), time.process_time()
    records = asyncio.run(run(url, Path(body).read_bytes(), headers, float(rate), float(seconds)))
    summary: dict[str, Any] = {"records": records, "wall_s": time.perf_counter() - started,
                               "client_cpu_s": time.process_time() - cpu}
    Path(out).write_text(json.dumps(summary))
    print(json.dumps({k: v for k, v in summary.items() if k != "records"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
