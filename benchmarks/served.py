"""One TorchServe with several registrations, driven by `ab -k`: equal warm-up, interleaved repeats, CPU per process.

Shared by the serving figures (benchmarks/serving_compare.py: ours vs the stock handler; serving_batching.py:
batched vs unbatched). Every registration gets the same warm-up (the JVM's JIT and TorchScript's profiling
executor speed up over the first thousands of requests) and the repeats alternate the order, so neither side
is measured on a colder or a busier server. Each ratio is the median of the per-round ratios with the
distribution-free 95 % interval of that median (`paired_ratio`).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from math import comb
from pathlib import Path
from typing import Any, Iterable, Iterator

import psutil

from benchmarks.ab import run_ab


class Served:
    """A started TorchServe instance, its registrations and an `ab` request body."""

    def __init__(self, instance: Any, root: Path, body: bytes, content_type: str) -> None:
        from serving.torchserve.client import read_keys

        self.instance, self.client = instance, instance.client(timeout=60)
        self.body = root / "body.bin"
        self.body.write_bytes(body)
        self.content_type = content_type
        self.auth = f"Authorization: Bearer {read_keys(instance.cfg.instance_dir)['inference']}"

    def register(self, name: str, mar: Path, batch_size: int = 1, max_batch_delay: int = 0) -> None:
        """Register `mar` as `name` (one worker) and wait until it is READY."""
        from serving.torchserve.model_store import read_manifest, register_archive
        from serving.torchserve.server_config import ModelSettings

        deadline = time.monotonic() + self.instance.cfg.server.start_timeout
        register_archive(self.client, mar, ModelSettings(batch_size=batch_size, max_batch_delay=max_batch_delay),
                         deadline, self.instance.is_running, name=name, version=read_manifest(mar).version)

    def ab(self, name: str, requests: int, clients: int) -> dict[str, Any]:
        """`ab -k` against one registration, with the CPU ms per request each server process spent meanwhile."""
        processes = _server_processes(self.instance.pid())
        before = {p.pid: _cpu(p) for p in processes}
        steal_before, started = _steal_seconds(), time.monotonic()
        result = drive(self, name, requests, clients)
        spent = {p.pid: _cpu(p) - before[p.pid] for p in processes}
        # the share of the machine's CPU time the hypervisor gave to other guests meanwhile (/proc/stat steal)
        cpu_seconds = (time.monotonic() - started) * psutil.cpu_count()
        result["cpu_steal_share"] = (_steal_seconds() - steal_before) / cpu_seconds
        java = self.instance.pid()
        done = max(result["complete"], 1)
        workers = [v for pid, v in spent.items() if pid != java]
        result["cpu_ms_per_request"] = {"frontend_java": spent.get(java, 0.0) * 1000 / done,
                                        # the registration's own worker is the one that did the work
                                        "worker_python": max(workers, default=0.0) * 1000 / done}
        return result


def drive(s: Served, name: str, requests: int, clients: int) -> dict[str, Any]:
    """One `ab -k` against registration `name`; raises unless every request got a 2xx (run_ab: unless any did)."""
    result = run_ab(s.client.url("inference", f"predictions/{name}"), s.body, [s.auth], requests, clients,
                    s.content_type)
    if result["failed"] or result["non_2xx"]:
        raise RuntimeError(f"{name}: {result['failed']} failed, {result['non_2xx']} non-2xx of "
                           f"{result['complete']} complete")
    return result


def _server_processes(java_pid: int | None) -> list[psutil.Process]:
    if not java_pid:
        return []
    java = psutil.Process(java_pid)
    return [java, *java.children(recursive=True)]


def _steal_seconds() -> float:
    """CPU seconds the hypervisor gave to other guests so far, all CPUs (0 where the OS does not count it)."""
    return getattr(psutil.cpu_times(), "steal", 0.0)


def _cpu(process: psutil.Process) -> float:
    try:
        t = process.cpu_times()
        return t.user + t.system
    except psutil.NoSuchProcess:
        return 0.0


@contextmanager
def served(body: bytes, content_type: str = "application/octet-stream") -> Iterator[Served]:
    """A TorchServe instance in a temporary folder, stopped on exit."""
    from serving.torchserve.server import TorchServeInstance
    from serving.torchserve.server_config import compose_serve_config

    with tempfile.TemporaryDirectory(prefix="bench_served_") as tmp:
        cfg = compose_serve_config([f"root={tmp}/ts", "instance=bench", "server.job_queue_size=1000"])
        instance = TorchServeInstance(cfg)
        try:
            instance.start()
            yield Served(instance, Path(tmp), body, content_type)
        finally:
            instance.stop(quiet=True)


def interleaved(s: Served, names: list[str], warmup: int, repeats: int, sequential: int, requests: int,
                clients: int) -> dict[str, Any]:
    """Equal warm-up, then `repeats` rounds (order alternating) of `-c 1` (latency) and `-c clients` (throughput)."""
    for name in names * 2:  # two halves each, interleaved: the JVM warms on both sides alike
        s.ab(name, max(clients, warmup // 2), clients)  # ab refuses fewer requests than clients (a quick run)
    runs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            latency = s.ab(name, sequential, 1) if sequential else {}  # 0: throughput only
            runs[name].append((latency, s.ab(name, requests, clients)))
    out: dict[str, Any] = {}
    med = statistics.median
    for name, pairs in runs.items():
        out[name] = {"throughput_rps": med(b["rps"] for _, b in pairs),
                     "rps_repeats": [round(b["rps"], 1) for _, b in pairs],
                     "cpu_ms_per_request": {k: med(b["cpu_ms_per_request"][k] for _, b in pairs)
                                            for k in ("frontend_java", "worker_python")}}
        if sequential:
            out[name].update({"p50_ms": med(a["p50_ms"] for a, _ in pairs), "p99_ms": _median(a["p99_ms"] for a, _ in pairs),
                              "p50_repeats": [a["p50_ms"] for a, _ in pairs]})
    steal = sorted(b["cpu_steal_share"] for pairs in runs.values() for _, b in pairs)
    out["settings"] = {"cpu_steal_share": {"median": round(med(steal), 3), "max": round(steal[-1], 3)},
                       "warmup_requests": warmup, "repeats": repeats, "sequential_requests": sequential,
                       "requests": requests, "clients": clients, "client": "ab -k (ApacheBench, keep-alive)",
                       "load_average_1m": round(os.getloadavg()[0], 2)}
    return out


def median_interval(values: list[float], confidence: float = 0.95) -> list[float] | None:
    """Distribution-free interval of the median: order statistics k and n-k+1, with k the largest such that
    P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2 (it covers >= `confidence`); None when no interval of
    n rounds reaches `confidence` (fewer than 6 rounds for 95 %)."""
    xs, n = sorted(values), len(values)
    k, tail = 0, 0.0
    while k < n and tail + comb(n, k) / 2**n <= (1 - confidence) / 2:
        tail += comb(n, k) / 2**n
        k += 1
    return [xs[k - 1], xs[n - k]] if k else None


def paired_ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> dict[str, Any]:
    """a's figure / b's figure round by round (`key`: rps_repeats, p50_repeats): their median and its interval."""
    ratios = [x / y for x, y in zip(a[key], b[key])]
    return {"median": statistics.median(ratios), "ci95": median_interval(ratios),
            "rounds": [round(r, 3) for r in ratios]}


def ratio_fields(ratios: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A figure's `paired_ratio`s as result fields: each median under its own name (what the report's ratio
    column and earlier result files read) and all of them, intervals and rounds too, under "ratios"."""
    return {**{name: r["median"] for name, r in ratios.items()}, "ratios": ratios}


def _median(values: Iterable[float | None]) -> float | None:
    """The median of the values ab could give (a run of fewer than ~100 requests has no p99), None if none."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None

