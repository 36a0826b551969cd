"""Serving: our handler vs TorchServe's stock BaseHandler on the same TorchScript model, one real TorchServe.

Three registrations of one server: ours unbatched (batch_size 1), ours batched (8, 30 ms delay) and the
stock handler unbatched. p50/p99 of sequential requests, throughput with 8 concurrent clients. The
server engineer's benchmarks/serving_bench.py provides the request timing, the in-process handler time
and the batched/unbatched figures.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO
from benchmarks.exported import Exported
from benchmarks.serving_bench import _latencies, _percentile, _throughput, handler_time_ms


def build_stock_mar(model_pt: Path, out_dir: Path) -> Path:
    """The same model.pt archived with benchmarks/stock_handler.py."""
    archiver = Path(sys.executable).parent / "torch-model-archiver"
    subprocess.run([str(archiver), "--model-name", "stock_digits", "--version", "1.0", "--serialized-file",
                    str(model_pt), "--handler", str(REPO / "benchmarks" / "stock_handler.py"),
                    "--export-path", str(out_dir), "-f"], check=True, capture_output=True)
    return out_dir / "stock_digits.mar"


def bench(exported: Exported, sequential: int = 200, clients: int = 8, total: int = 400) -> dict[str, Any]:
    """Latency and throughput per registration; ratios ours/stock and batched/unbatched."""
    from serving.torchserve.model_store import read_manifest, register_archive
    from serving.torchserve.server import TorchServeInstance
    from serving.torchserve.server_config import ModelSettings, compose_serve_config

    body = exported.sample_png.read_bytes()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
        stock_mar = build_stock_mar(exported.model_pt, Path(tmp))
        cfg = compose_serve_config([f"root={tmp}/ts", "instance=bench", "server.job_queue_size=1000"])
        instance = TorchServeInstance(cfg)
        try:
            instance.start()
            client = instance.client(timeout=60)
            deadline = time.monotonic() + cfg.server.start_timeout
            version = read_manifest(exported.mar).version
            for name, mar, batch in (("ours", exported.mar, 1), ("ours_batched", exported.mar, 8), ("stock", stock_mar, 1)):
                register_archive(client, mar, ModelSettings(batch_size=batch, max_batch_delay=30 if batch > 1 else 0),
                                 deadline, instance.is_running, name=f"bench_{name}", version=version)
            for name in ("ours", "ours_batched", "stock"):
                _latencies(client, f"bench_{name}", body, "application/octet-stream", 20)  # warm-up
            for name in ("ours", "stock"):
                lat = _latencies(client, f"bench_{name}", body, "application/octet-stream", sequential)
                out[name] = {"p50_ms": _percentile(lat, 50), "p99_ms": _percentile(lat, 99),
                             "mean_ms": statistics.fmean(lat)}
            for name in ("ours", "ours_batched", "stock"):
                out.setdefault(name, {})["throughput_rps"] = _throughput(
                    instance, f"bench_{name}", body, "application/octet-stream", clients, total)
        finally:
            instance.stop(quiet=True)
    out["ours"]["handler_ms_in_process"] = handler_time_ms(exported.mar, body)
    out["ours_batched"]["handler_ms_in_process_batch8"] = handler_time_ms(exported.mar, body, batch=8)
    return {
        **out, "clients": clients, "requests": total, "sequential_requests": sequential,
        "ours_over_stock_p50": out["ours"]["p50_ms"] / out["stock"]["p50_ms"],
        "ours_over_stock_throughput": out["ours"]["throughput_rps"] / out["stock"]["throughput_rps"],
        "batched_over_unbatched": out["ours_batched"]["throughput_rps"] / out["ours"]["throughput_rps"],
        "target_batched_over_unbatched": 3.0,
    }
