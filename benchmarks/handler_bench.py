"""In-process handler time per request, batch of 1 vs batch of 8, through TorchServe's own worker code.

    PYTHONPATH=. .venv/bin/python -m benchmarks.handler_bench RUN/export/archives/1.0/digits_cnn.mar [...]

Each batch goes frame → `retrieve_msg` → `Service.predict` (real Context, the handler, the prediction
hook) → response frame, as in a worker, without Java. Reports wall and CPU time (one intra-op thread,
so CPU time approximates an uncontended core on a busy machine). Figures, never assertions.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from serving.torchserve.inprocess import InProcessWorker

TEXTS = ["I was charged twice for my subscription this month", "My parcel has not arrived after two weeks",
         "I cannot log in to my account", "The app crashes when I open settings", "Update my billing address",
         "Where is my order?", "How do I change the email on my profile", "Error 500 when uploading a file"]


def _bodies(kind: str) -> list[tuple[bytes, str]]:
    if kind == "text":
        return [(t.encode(), "text/plain") for t in TEXTS]
    from datamodules.digits import digits_images

    out = []
    for image in digits_images()[0][:8]:
        buf = io.BytesIO()
        image.save(buf, "PNG")
        out.append((buf.getvalue(), "image/png"))
    return out


def bench_archive(mar: Path, repeats: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Per-request wall and CPU milliseconds (median) for batches of 1 and 8."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        worker = InProcessWorker(mar, Path(tmp))
        bodies = _bodies(worker.handler.kind)
        result: dict[str, Any] = {"archive": str(mar), "kind": worker.handler.kind}
        for size in (1, 8):
            batch = bodies[:size]
            for _ in range(warmup):
                worker.predict(batch)
            wall, cpu = [], []
            for _ in range(repeats):
                w0, c0 = time.perf_counter(), time.process_time()
                code, answers = worker.predict(batch)
                wall.append((time.perf_counter() - w0) * 1000 / size)
                cpu.append((time.process_time() - c0) * 1000 / size)
                assert code == 200 and all(a.status == 200 for a in answers)
            result[f"batch_{size}"] = {"wall_ms_per_request": statistics.median(wall),
                                       "cpu_ms_per_request": statistics.median(cpu)}
    return result


def main() -> None:
    """CLI: one JSON line per archive."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mars", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    for mar in args.mars:
        print(json.dumps(bench_archive(mar, args.repeats)))


if __name__ == "__main__":
    main()
