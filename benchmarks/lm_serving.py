"""Text generation serving: the handler against a plain loop, batching against none, time to first streamed token.

    PYTHONPATH=. .venv/bin/python -m benchmarks.lm_serving EXPORT_DIR MAR

EXPORT_DIR holds model.pt, metadata.json and tokenizer.json (what the .mar carries); MAR is its archive.
Rows (ratios against a baseline measured in the same run; figures, never assertions):
  handler_vs_plain     in-process handler (TorchServe's worker code) tokens/s / a plain greedy loop's over
                       the same model.pt (target >= 0.9)
  batched_vs_unbatched TorchServe tokens/s with 8 concurrent clients, batch_size 8 / batch_size 1 (target >= 3)
  first_token_ms       HTTP streaming: request sent → first chunk, p50 / p99; and one request's chunks with times
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import interleaved
from core.export_dir import ExportDir
from serving.torchserve.inprocess import InProcessWorker

PROMPT = "the cat sat on the mat and"


def plain_loop(model: Any, meta: dict[str, Any], prompt_ids: list[int], new_tokens: int) -> list[int]:
    """The baseline: prefill, then argmax + one forward per token, nothing else."""
    past = torch.zeros(meta["num_layers"], 2, 1, meta["num_kv_heads"], 1, meta["head_dim"])
    mask = torch.tensor([[0] + [1] * len(prompt_ids)])
    out: list[int] = []
    with torch.inference_mode():
        logits, past = model(torch.tensor([prompt_ids]), mask, past)
        for _ in range(new_tokens):
            token = int(logits[0, -1].argmax())
            out.append(token)
            if len(out) == new_tokens:
                break
            mask = torch.cat([mask, torch.ones(1, 1, dtype=torch.long)], dim=1)
            logits, past = model(torch.tensor([[token]]), mask, past)
    return out


def handler_vs_plain(export_dir: Path, mar: Path, new_tokens: int, repeats: int) -> dict[str, Any]:
    """Tokens/s of one greedy request through the handler vs the plain loop (interleaved repeats)."""
    from tokenizers import Tokenizer

    files = ExportDir(export_dir)
    meta = json.loads(files.metadata_path.read_text())["decoder"]
    model = torch.jit.load(str(files.scripted_model_path)).eval()
    ids = Tokenizer.from_file(str(files.tokenizer_file)).encode(PROMPT).ids
    with tempfile.TemporaryDirectory(prefix="lm_bench_") as tmp:
        worker = InProcessWorker(mar, Path(tmp), batch_size=1)
        body = json.dumps({"prompt": PROMPT, "max_new_tokens": new_tokens, "temperature": 0.0}).encode()
        count = worker.predict([(body, "application/json")])[1][0].json["usage"]["completion_tokens"]

        def handler() -> float:
            start = time.perf_counter()
            worker.predict([(body, "application/json")])
            return count / (time.perf_counter() - start)

        def plain() -> float:
            start = time.perf_counter()
            plain_loop(model, meta, ids, count)
            return count / (time.perf_counter() - start)

        for fn in (handler, plain):  # warm-up: TorchScript profiles its first calls
            fn(), fn()
        runs = interleaved({"handler": handler, "plain": plain}, repeats)
    return {"tokens": count, "handler_tokens_per_s": round(runs["handler"]["median"], 1),
            "plain_tokens_per_s": round(runs["plain"]["median"], 1),
            "ratio": round(runs["handler"]["median"] / runs["plain"]["median"], 3), "target": ">= 0.9"}


def _served(mar: Path, root: Path, batch_size: int, fn: Any) -> Any:
    from serving.torchserve.server import TorchServeInstance
    from serving.torchserve.server_config import compose_serve_config

    server = TorchServeInstance(compose_serve_config([f"root={root}", f"instance=b{batch_size}",
                                                      f"model.batch_size={batch_size}", "model.max_batch_delay=20"]))
    server.start([mar])
    try:
        return fn(server.client())
    finally:
        server.stop(quiet=True)


def _throughput(client: Any, name: str, clients: int, per_client: int, new_tokens: int) -> float:
    body = json.dumps({"prompt": PROMPT, "max_new_tokens": new_tokens, "temperature": 0.0}).encode()
    tokens = [0] * clients
    barrier = threading.Barrier(clients)

    def one(i: int) -> None:
        barrier.wait()
        for _ in range(per_client):
            resp = client.predict(name, body, content_type="application/json", timeout=120)
            tokens[i] += resp.json()["usage"]["completion_tokens"]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))
    return sum(tokens) / (time.perf_counter() - start)


def _first_tokens(client: Any, name: str, n: int, new_tokens: int) -> dict[str, Any]:
    body = json.dumps({"prompt": PROMPT, "max_new_tokens": new_tokens, "temperature": 0.0, "stream": True}).encode()
    firsts, example = [], []
    for i in range(n):
        sent = time.monotonic()
        chunks = [(t - sent, c) for t, c in client.predict_stream(name, body, timeout=120)]
        firsts.append(chunks[0][0] * 1000)
        if i == n - 1:
            example = [{"t_ms": round(t * 1000, 1), "text": c["text"], "finish_reason": c["finish_reason"]}
                       for t, c in chunks]
    q = statistics.quantiles(firsts, n=100) if len(firsts) > 1 else firsts * 99
    return {"requests": n, "p50_ms": round(statistics.median(firsts), 1), "p99_ms": round(q[98], 1),
            "example_chunks": example}


def bench(export_dir: Path, mar: Path, quick: bool = False) -> dict[str, Any]:
    """All three rows."""
    new_tokens = 16 if quick else 48
    out: dict[str, Any] = {"handler_vs_plain": handler_vs_plain(Path(export_dir), mar, new_tokens, 3 if quick else 9)}
    per_client = 2 if quick else 6
    with tempfile.TemporaryDirectory(prefix="lm_serve_bench_") as tmp:
        unbatched = _served(mar, Path(tmp), 1, lambda c: _throughput(c, mar.stem, 8, per_client, new_tokens))

        def batched_and_stream(client: Any) -> tuple[float, dict[str, Any]]:
            return (_throughput(client, mar.stem, 8, per_client, new_tokens),
                    _first_tokens(client, mar.stem, 10 if quick else 50, new_tokens))

        batched, first = _served(mar, Path(tmp), 8, batched_and_stream)
    out["batched_vs_unbatched"] = {"clients": 8, "batched_tokens_per_s": round(batched, 1),
                                   "unbatched_tokens_per_s": round(unbatched, 1),
                                   "ratio": round(batched / unbatched, 2), "target": ">= 3"}
    out["first_token_ms"] = first
    return out


if __name__ == "__main__":
    print(json.dumps(bench(Path(sys.argv[1]), Path(sys.argv[2]), quick="--quick" in sys.argv), indent=2))
