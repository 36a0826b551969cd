"""Serving at 2x its capacity, open loop, through the gateway (nginx, TLS, API key).

    PYTHONPATH=. .venv/bin/python -m benchmarks.serving_load --mar RUN/export/archives/1.0/digits_cnn.mar \
        --sample data/digits_samples/1770_digit3.png

One TorchServe (the archive unbatched) behind the gateway. The capacity: `ab -k` with 8 keep-alive clients
after a warm-up (median of 3). Then the gateway's per-key rate set to 0.8x that capacity and twice the capacity offered
for `seconds` on a fixed schedule (benchmarks/openloop.py: open loop, the rate does not fall when answers
slow down; ab and locust are closed loop, and locust could not offer more than ~200 req/s here). Over
capacity the gateway answers 429 with Retry-After instead of queueing into TorchServe's 503s. Reported:
status counts (nginx's access log), p50/p99 from each request's scheduled start, 5xx, lost (no answer at
the client, or answers nginx did not log), and how late the sends left. In `make bench` as serving_load.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.ab import run_ab
from benchmarks.common import REPO



def statuses(access_log: Path, since_line: int) -> Counter:
    """HTTP status counts of the gateway's access log lines after `since_line`."""
    lines = access_log.read_text().splitlines()[since_line:]
    return Counter(int(m.group(1)) for m in (re.search(r'" (\d{3}) ', line) for line in lines) if m)


def _percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else None


def open_loop(url: str, body: Path, key: str, rate: float, seconds: float, out: Path) -> dict[str, Any]:
    """`rate` req/s for `seconds` on a fixed schedule: per-status counts, p50/p99 ms, send lag, offered req/s."""
    cmd = [sys.executable, "-m", "benchmarks.openloop", url, str(body), str(rate), str(seconds), str(out),
           f"X-API-Key: {key}", "Content-Type: application/octet-stream"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"benchmarks.openloop failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(out.read_text())
    records = summary["records"]
    times = [ms for ms, _, _ in records]
    ok = [ms for ms, status, _ in records if status == 200]
    lags = [lag for _, _, lag in records]
    return {"target_rps": rate, "sent": len(records), "offered_rps": len(records) / seconds, "seconds": seconds,
            "client_status_counts": dict(sorted(Counter(status for _, status, _ in records).items())),
            "p50_ms": _percentile(times, 50), "p99_ms": _percentile(times, 99),
            "p50_ms_200": _percentile(ok, 50), "p99_ms_200": _percentile(ok, 99),
            "send_lag_ms_p50": _percentile(lags, 50), "send_lag_ms_p99": _percentile(lags, 99),
            "client_cpu_s": round(summary["client_cpu_s"], 2), "wall_s": round(summary["wall_s"], 1),
            "tool": "benchmarks/openloop.py (asyncio, fixed schedule, keep-alive TLS)"}


def bench_load(mar: Path, body: bytes, seconds: float = 10.0, warmup: int = 4000, repeats: int = 3,
               limit_fraction: float = 0.8) -> dict[str, Any]:
    """Capacity with 8 ab clients, then 2x that offered open-loop through the gateway (per-key rate limited
    to `limit_fraction` of the capacity)."""
    from dataclasses import replace

    from serving.gateway.config import GatewayConfig, RateLimit, TLSConfig
    from serving.gateway.control import Gateway
    from serving.torchserve.model_store import read_manifest
    from serving.torchserve.server import TorchServeInstance
    from serving.torchserve.server_config import compose_serve_config

    info = read_manifest(mar)
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        root = Path(tmp)
        (root / "body.bin").write_bytes(body)
        key = secrets.token_hex(32)
        (root / "keys").write_text(f"bench:{key}\n")
        instance = TorchServeInstance(compose_serve_config([f"root={root / 'serve'}", "instance=load"]))
        instance.start([mar])
        try:
            cfg = GatewayConfig(root=str(root / "gw"), instance="gw", tls=TLSConfig(self_signed=True),
                                api_keys_file=str(root / "keys"), serve_root=str(root / "serve"),
                                serve_instance="load", rate_limit=RateLimit(per_second=100000, burst=1000,
                                                                            concurrent=1000))
            gw = Gateway(cfg)
            gw.start(routes={info.name: {"champion": info.version}})
            url = gw.url(f"v1/models/{info.name}:predict")
            headers = [f"X-API-Key: {key}"]
            try:
                run_ab(url, root / "body.bin", headers, warmup, 8)  # warm-up: JVM JIT, TorchScript profiling
                runs = [run_ab(url, root / "body.bin", headers, max(200, int(150 * seconds)), 8) for _ in range(repeats)]
                capacity = statistics.median(r["rps"] for r in runs)
                # the limit below the capacity: the 429 path (TLS, a JSON answer) and the load generator
                # take CPU from the same 2 cores, and a limit the server cannot keep up with queues requests
                rate = max(1, int(limit_fraction * capacity))
                gw.reconfigure(replace(cfg, rate_limit=RateLimit(per_second=rate, burst=max(1, rate // 10),
                                                                 concurrent=1000)))
                log = gw.dir / "logs" / "access.log"
                mark = len(log.read_text().splitlines())
                overload = open_loop(url, root / "body.bin", key, 2 * capacity, seconds, root / "records.json")
                time.sleep(0.5)
                counts = statuses(log, mark)
            finally:
                gw.stop()
        finally:
            instance.stop(quiet=True)
    answered = sum(counts.values())
    client = overload["client_status_counts"]
    answered_at_client = sum(v for k, v in client.items() if k)
    return {"capacity_rps_8_clients": capacity, "rate_limit_per_s": rate, "capacity_repeats": [round(r["rps"], 1) for r in runs],
            "capacity_p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "overload": {**overload, "offered_over_capacity": overload["offered_rps"] / max(capacity, 1e-9),
                         "status_counts": dict(sorted(counts.items())),
                         "5xx": sum(v for k, v in counts.items() if k >= 500),
                         # no answer at the client (status 0), or answers the gateway never logged
                         "lost": client.get(0, 0) + abs(answered_at_client - answered),
                         "logged_by_gateway": answered},
            "tool": "capacity: ab -k (8 clients); overload: benchmarks/openloop.py at 2x, through the gateway"}


def main() -> int:
    """Command line: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mar", type=Path, required=True)
    parser.add_argument("--sample", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(bench_load(args.mar, args.sample.read_bytes(), args.seconds), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
