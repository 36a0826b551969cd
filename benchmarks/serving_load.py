"""Serving under overload, measured with a real load tool: ApacheBench (`ab -k`) through the gateway.

    PYTHONPATH=. .venv/bin/python -m benchmarks.serving_load --mar RUN/export/archives/1.0/digits_cnn.mar \
        --sample data/digits_samples/1770_digit3.png

One TorchServe (the archive unbatched) behind the gateway (nginx, TLS, API key). First the capacity:
`ab -k` with 8 keep-alive clients. Then the overload: the gateway's per-key rate set to that capacity and
`ab -k` offering about twice as much (enough clients that the arrival rate, not the answers, paces them).
Over capacity the gateway answers 429 with Retry-After in microseconds instead of queueing into
TorchServe's 503s. Reported: status counts (nginx's access log), p50/p99 (ab), 5xx and lost requests.
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


def run_ab(url: str, body: Path, key: str, requests: int, clients: int, cert_ok: bool = True) -> dict[str, Any]:
    """One `ab -k` run: complete/failed counts, non-2xx, req/s and the latency percentiles (ms)."""
    ab = shutil.which("ab")
    if not ab:
        raise RuntimeError("ab not found: apt-get install apache2-utils (scripts/services.sh up installs it)")
    cmd = [ab, "-k", "-l", "-q", "-n", str(requests), "-c", str(clients), "-s", "60", "-p", str(body),
           "-T", "application/octet-stream", "-H", f"X-API-Key: {key}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout

    def number(label: str) -> float:
        found = re.search(rf"^{label}:\s+([0-9.]+)", out, re.M)
        return float(found.group(1)) if found else 0.0

    percentiles = {int(p): float(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\d+)", out, re.M)}
    return {"complete": int(number("Complete requests")), "failed": int(number("Failed requests")),
            "non_2xx": int(number("Non-2xx responses")), "rps": number("Requests per second"),
            "p50_ms": percentiles.get(50), "p99_ms": percentiles.get(99), "clients": clients, "sent": requests}


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
                # closed-loop ab offers clients/latency: 2x the answered rate needs about twice the clients
                # that saturate it; the rejected ones come back in microseconds, so offered load >= 2x
                sent = int(2 * rate * seconds)
                overload = run_ab(url, root / "body.bin", key, sent, 64)
                time.sleep(0.5)
                counts = statuses(log, mark)
            finally:
                gw.stop()
        finally:
            instance.stop(quiet=True)
    answered = sum(counts.values())
    return {"capacity_rps_8_clients": capacity["rps"], "capacity_p50_ms": capacity["p50_ms"],
            "overload": {**overload, "offered_over_capacity": overload["rps"] / max(capacity["rps"], 1e-9),
                         "status_counts": dict(sorted(counts.items())),
                         "5xx": sum(v for k, v in counts.items() if k >= 500),
                         "lost": overload["failed"] + sent - overload["complete"],
                         "logged_by_gateway": answered},
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
