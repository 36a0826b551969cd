"""Serving under overload, measured with a real load tool: ApacheBench (`ab -k`) through the gateway.

    PYTHONPATH=. .venv/bin/python -m benchmarks.serving_load --mar RUN/export/archives/1.0/digits_cnn.mar \
        --sample data/digits_samples/1770_digit3.png

One TorchServe (the archive unbatched) behind the gateway (nginx, TLS, API key). First the capacity:
`ab -k` with 8 keep-alive clients. Then the overload for `seconds`: the gateway's per-key rate set to that
capacity and `ab -k -t` with 64 clients, which offers several times the capacity for the whole window (the
rejected requests come back in microseconds). Over capacity the gateway answers 429 with Retry-After instead
of queueing into TorchServe's 503s. Reported: status counts (nginx's access log), p50/p99 (ab), 5xx, lost
requests (ab's failures by kind: connect/receive/exceptions; `-l` keeps a 429's other length from counting),
and the requests cut by ab's own deadline (nginx logs those 499). In `make bench` as section serving_load.
"""
from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any


def run_ab(url: str, body: Path, key: str, requests: int, clients: int, cert_ok: bool = True,
           seconds: float | None = None) -> dict[str, Any]:
    """One `ab -k` run (`requests` of them, or for `seconds`): complete/failed counts, non-2xx, req/s, p50/p99 ms."""
    ab = shutil.which("ab")
    if not ab:
        raise RuntimeError("ab not found: apt-get install apache2-utils (scripts/services.sh up installs it)")
    # -l: answers of different lengths (200 vs 429 JSON) are not "failed" (ab's Length check counted those)
    cmd = [ab, "-k", "-l", "-q", "-n", str(requests), "-c", str(clients), "-s", "60", "-p", str(body),
           *(["-t", str(int(seconds))] if seconds else []), "-T", "application/octet-stream",
           "-H", f"X-API-Key: {key}", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = proc.stdout

    def number(label: str) -> float:
        found = re.search(rf"^{label}:\s+([0-9.]+)", out, re.M)
        return float(found.group(1)) if found else 0.0

    percentiles = {int(p): float(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\d+)", out, re.M)}
    # ab's own breakdown of "Failed requests" (Connect, Receive, Length, Exceptions) and its stderr lines
    kinds = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", out)
    failed_kinds = dict(zip(("connect", "receive", "length", "exceptions"), map(int, kinds.groups()))) if kinds else {}
    return {"complete": int(number("Complete requests")), "failed": int(number("Failed requests")),
            "failed_kinds": failed_kinds, "ab_stderr": proc.stderr.strip().splitlines()[-5:],
            "non_2xx": int(number("Non-2xx responses")), "rps": number("Requests per second"),
            "p50_ms": percentiles.get(50), "p99_ms": percentiles.get(99), "clients": clients,
            "sent": requests if not seconds else None}


def statuses(access_log: Path, since_line: int) -> Counter:
    """HTTP status counts of the gateway's access log lines after `since_line`."""
    lines = access_log.read_text().splitlines()[since_line:]
    return Counter(int(m.group(1)) for m in (re.search(r'" (\d{3}) ', line) for line in lines) if m)


def bench_load(mar: Path, body: bytes, seconds: float = 10.0) -> dict[str, Any]:
    """Capacity with 8 clients, then ~2x that offered through the gateway limited to the capacity."""
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
            try:
                run_ab(url, root / "body.bin", key, 2000, 8)  # warm-up: JVM JIT, TorchScript profiling
                capacity = run_ab(url, root / "body.bin", key, max(400, int(300 * seconds)), 8)
                rate = max(1, int(capacity["rps"]))
                gw.reconfigure(replace(cfg, rate_limit=RateLimit(per_second=rate, burst=rate // 10, concurrent=1000)))
                log = gw.dir / "logs" / "access.log"
                mark = len(log.read_text().splitlines())
                # closed-loop ab with 8x the clients that saturate it, for the whole window: the rejected
                # ones come back in microseconds, so the offered rate stays >= 2x the capacity throughout
                overload = run_ab(url, root / "body.bin", key, 10_000_000, 64, seconds=seconds)
                time.sleep(0.5)
                counts = statuses(log, mark)
            finally:
                gw.stop()
        finally:
            instance.stop(quiet=True)
    answered = sum(counts.values())
    cut = counts.pop(499, 0)  # in flight when ab's -t deadline closed the connection: nginx logs 499
    return {"capacity_rps_8_clients": capacity["rps"], "capacity_p50_ms": capacity["p50_ms"],
            "overload": {**overload, "offered_over_capacity": overload["rps"] / max(capacity["rps"], 1e-9),
                         "status_counts": dict(sorted(counts.items())),
                         "5xx": sum(v for k, v in counts.items() if k >= 500),
                         # an answered request ab failed to read, or one nginx never logged
                         "lost": overload["failed"] + max(0, overload["complete"] - (answered - cut)),
                         "cut_by_client_deadline": cut, "logged_by_gateway": answered},
            "tool": "ab -k (ApacheBench, keep-alive) through the gateway"}


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
