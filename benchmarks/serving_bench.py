"""Serving speed of one `.mar` on a real TorchServe: HTTP latency, in-process handler time, batching gain.

    PYTHONPATH=. .venv/bin/python -m benchmarks.serving_bench --mar RUN/export/archives/1.0/digits_cnn.mar \
        --sample data/digits_samples/1770_digit3.png

`bench_serving(...)` (what `benchmarks.run` calls) starts one TorchServe instance with the archive
registered twice: `bench_unbatched` (batch_size 1) and `bench_batched` (batch_size 8, max_batch_delay
30 ms), one worker each, so both are measured on the same server in the same run. Results are figures
and ratios (batched/unbatched throughput), never asserted here.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from serving.torchserve.model_store import register_archive, read_manifest
from serving.torchserve.server import TorchServeInstance
from serving.torchserve.server_config import ModelSettings, compose_serve_config


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def handler_time_ms(mar: Path, body: bytes, repeats: int = 200, batch: int = 1) -> float:
    """Median in-process time per request of the handler's work (decode, forward, answer) for a batch of
    `batch` requests, no server: batch 1 vs 8 is the most dynamic batching can save inside the worker."""
    from runtime import classifier_io as io

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(mar) as zf:
        zf.extractall(tmp)
        spec, model = io.load_spec(tmp), io.load_model(tmp)
        tokenizer = io.pp.load_tokenizer(spec.tokenizer_dir) if spec.kind == "text" else None

        def once() -> None:
            if spec.kind == "image":
                inputs = io.collate_images([io.decode_image_request(body, spec).value for _ in range(batch)])
            else:
                inputs = io.collate_texts([io.decode_text_request(body, spec).value for _ in range(batch)],
                                          tokenizer, spec)
            io.format_predictions(io.predict_batch(model, inputs), spec)

        for _ in range(50):  # TorchScript's profiling executor re-optimises over the first calls
            once()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            once()
            times.append((time.perf_counter() - start) * 1000.0 / batch)
        return statistics.median(times)  # median: robust to other jobs stealing the CPU


def _latencies(client: Any, name: str, body: bytes, content_type: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        resp = client.predict(name, body, content_type=content_type)
        out.append((time.perf_counter() - start) * 1000.0)
        if resp.status_code != 200:
            raise RuntimeError(f"{name}: HTTP {resp.status_code} {resp.text[:300]}")
    return out


def _throughput(instance: TorchServeInstance, name: str, body: bytes, content_type: str, clients: int,
                total: int) -> float:
    """Requests per second with `clients` threads sending `total` requests in all."""
    errors: list[str] = []
    per_client = max(1, total // clients)

    def worker() -> None:
        client = instance.client()  # one HTTP session per thread
        for _ in range(per_client):
            resp = client.predict(name, body, content_type=content_type)
            if resp.status_code != 200:
                errors.append(f"HTTP {resp.status_code}")

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{name}: {len(errors)} failed requests under load, e.g. {errors[:3]}")
    return per_client * clients / elapsed


def bench_serving(mar: Path, body: bytes, content_type: str = "application/octet-stream", root: Path | None = None,
                  sequential: int = 200, clients: int = 8, total: int = 400, batch_size: int = 8,
                  max_batch_delay: int = 30) -> dict[str, Any]:
    """Latency p50/p99 (sequential), handler time, and batched vs unbatched throughput with `clients` clients."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_serve_config([f"root={root or tmp}", "instance=bench", "server.job_queue_size=1000"])
        instance = TorchServeInstance(cfg)
        try:
            instance.start()
            client = instance.client(timeout=60)
            deadline = time.monotonic() + cfg.server.start_timeout
            version = read_manifest(mar).version
            register_archive(client, mar, ModelSettings(batch_size=1, max_batch_delay=0), deadline,
                             instance.is_running, name="bench_unbatched", version=version)
            register_archive(client, mar, ModelSettings(batch_size=batch_size, max_batch_delay=max_batch_delay),
                             deadline, instance.is_running, name="bench_batched", version=version)
            _latencies(client, "bench_unbatched", body, content_type, 20)  # warm-up
            _latencies(client, "bench_batched", body, content_type, 5)
            lat = _latencies(client, "bench_unbatched", body, content_type, sequential)
            unbatched = _throughput(instance, "bench_unbatched", body, content_type, clients, total)
            batched = _throughput(instance, "bench_batched", body, content_type, clients, total)
        finally:
            instance.stop(quiet=True)
    return {
        "http_latency_ms": {"p50": _percentile(lat, 50), "p99": _percentile(lat, 99),
                            "mean": statistics.fmean(lat), "requests": sequential},
        "handler_ms_per_request": handler_time_ms(mar, body),
        "throughput_rps": {"unbatched": unbatched, "batched": batched, "clients": clients, "requests": total,
                           "batch_size": batch_size, "max_batch_delay_ms": max_batch_delay},
        "batched_over_unbatched": batched / unbatched,
    }


def main() -> int:
    """Command line: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mar", type=Path, required=True)
    parser.add_argument("--sample", type=Path, required=True, help="request body file (image, or .json for text)")
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--total", type=int, default=400)
    parser.add_argument("--max-batch-delay", type=int, default=30)
    args = parser.parse_args()
    content_type = "application/json" if args.sample.suffix == ".json" else "application/octet-stream"
    result = bench_serving(args.mar, args.sample.read_bytes(), content_type, sequential=args.sequential,
                           clients=args.clients, total=args.total, max_batch_delay=args.max_batch_delay)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
