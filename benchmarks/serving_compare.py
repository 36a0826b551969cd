"""Serving: our handler vs TorchServe's stock BaseHandler on the same TorchScript model, one real TorchServe.

Both registered unbatched on one server, both warmed alike (`warmup` requests each, in two interleaved
halves: the JVM's JIT and TorchScript's profiling executor speed up over the first thousands), then
`repeats` rounds alternating the order, every figure from the same client (`ab -k`, keep-alive, C):
p50/p99 with 1 client, throughput with 8. Medians of the repeats; the CPU ms per request of the frontend
(java) and of each worker (python) say where the time goes (benchmarks/results/PROFILE.md, serving).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import REPO
from benchmarks.exported import Exported
from benchmarks.served import interleaved, served
from benchmarks.handler_bench import bench_archive


def build_stock_mar(model_pt: Path, out_dir: Path) -> Path:
    """The same model.pt archived with benchmarks/stock_handler.py."""
    archiver = Path(sys.executable).parent / "torch-model-archiver"
    subprocess.run([str(archiver), "--model-name", "stock_digits", "--version", "1.0", "--serialized-file",
                    str(model_pt), "--handler", str(REPO / "benchmarks" / "stock_handler.py"),
                    "--export-path", str(out_dir), "-f"], check=True, capture_output=True)
    return out_dir / "stock_digits.mar"


def bench(exported: Exported, warmup: int = 4000, repeats: int = 3, sequential: int = 1000, requests: int = 3000,
          clients: int = 8) -> dict[str, Any]:
    """p50/p99 (1 client) and req/s (`clients`) of ours vs stock, interleaved; ratios ours/stock."""
    body = exported.sample.read_bytes()
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmp:
        stock_mar = build_stock_mar(exported.model_pt, Path(tmp))
        with served(body) as s:
            s.register("bench_ours", exported.mar)
            s.register("bench_stock", stock_mar)
            runs = interleaved(s, ["bench_ours", "bench_stock"], warmup, repeats, sequential, requests, clients)
    ours, stock = runs["bench_ours"], runs["bench_stock"]
    # TorchServe's worker code in process, no Java: the part of a request our handler's worker spends
    ours["handler_ms_in_process"] = bench_archive(exported.mar, repeats=200)["batch_1"]["wall_ms_per_request"]
    return {
        "ours": ours, "stock": stock, **runs["settings"],
        "ours_over_stock_p50": ours["p50_ms"] / stock["p50_ms"],
        "ours_over_stock_throughput": ours["throughput_rps"] / stock["throughput_rps"],
        "target_throughput": 0.95, "target_p50": 1.1,
    }
