"""Dynamic batching: batch_size 8 vs 1 of one archive on one TorchServe, 16 concurrent `ab -k` clients.

Both registrations warmed alike and measured in alternating rounds (benchmarks/served.py). The ratio is the
median of the per-round ratios (a batched round over the unbatched round beside it) with the 95 % interval
of that median: the unbatched side's rounds move by up to ±14 % on this 2-core machine (text_minilm: 75-99 req/s
within one run), so 3 rounds could land on either side of a 3x bar. Beside the HTTP figure, the in-process
time per request at batch 1 and 8 through TorchServe's worker code (benchmarks/handler_bench.py): the most
batching can save inside the worker, so the figure shows where the time goes (forward pass vs per-request
overhead the frontend and IPC add).
"""
from __future__ import annotations

from typing import Any

from benchmarks.exported import Exported
from benchmarks.handler_bench import bench_archive
from benchmarks.served import interleaved, paired_ratio, ratio_fields, served


def bench(exported: Exported, content_type: str, requests: int = 400, repeats: int = 24, warmup: int = 400,
          clients: int = 16, batch_size: int = 8, max_batch_delay: int = 20, in_process_repeats: int = 50) -> dict[str, Any]:
    """req/s batched vs unbatched (`clients` clients; median of `repeats` paired rounds) + in-process ms/request
    at batch 1 and 8."""
    with served(exported.sample.read_bytes(), content_type) as s:
        s.register("bench_b1", exported.mar)
        s.register("bench_b8", exported.mar, batch_size=batch_size, max_batch_delay=max_batch_delay)
        runs = interleaved(s, ["bench_b1", "bench_b8"], warmup, repeats, 0, requests, clients)
    in_process = bench_archive(exported.mar, repeats=in_process_repeats, warmup=10)
    one, eight = in_process["batch_1"]["wall_ms_per_request"], in_process["batch_8"]["wall_ms_per_request"]
    ratios = {"batched_over_unbatched": paired_ratio(runs["bench_b8"], runs["bench_b1"], "rps_repeats")}
    return {"unbatched": runs["bench_b1"], "batched": runs["bench_b8"], **runs["settings"],
            "batch_size": batch_size, "max_batch_delay_ms": max_batch_delay,
            **ratio_fields(ratios),
            "in_process_ms_per_request": {"batch_1": one, "batch_8": eight, "batch_1_over_batch_8": one / eight},
            "target": 3.0}
