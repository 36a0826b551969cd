"""Batch scoring speed: the whole job against a bare loop of batched `model(x)`, and 1 vs 2 processes.

    PYTHONPATH=. .venv/bin/python -m benchmarks.scoring_bench --model RUN/export --input FOLDER_OR_TABLE

`bench_scoring(...)` (what `benchmarks.run` calls) measures, in the same run and alternating so that a
drifting machine load hits both alike:
  - bare: the records preprocessed once up front with the very functions scoring uses, then only
    `model(x)` over batches of `batch_size` (the ceiling: no decoding, no postprocessing, no writing);
  - scoring: `serving.scoring.runner.score` end to end (decoding in DataLoader workers, forward,
    postprocessing, atomic Parquet chunks), timed over its scoring loop (model loading excluded);
  - ratio = scoring records/s / bare records/s (target >= 0.9);
and then score.py as 1 process vs 2 processes in parallel (num_shards=2), records/s over the job's
scoring span (from _SUCCESS.json) and over the wall clock including start-up. Figures only, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import REPO, machine
from serving.scoring.inputs import Collate, RecordDataset
from serving.scoring.inputs import Columns, read_records
from serving.scoring.model import load_model
from serving.scoring.runner import ScoreOptions, score
from serving.scoring.kinds import input_kind


def bare_loop_rps(model_path: Path, input_path: Path, columns: Columns, batch_size: int,
                  device: str) -> tuple[float, int]:
    """records/s of `model(x)` alone over batches preprocessed beforehand (the same preprocessing code)."""
    model = load_model(model_path, device)
    table = read_records(input_path, model.spec.kind, columns)
    kind = input_kind(model)
    dataset, collate = RecordDataset(table, kind.preparer(model)), Collate(kind.collate(model))
    batches = [collate([dataset[i] for i in range(s, min(s + batch_size, len(table)))])
               for s in range(0, len(table), batch_size)]
    inputs = [[b.inputs[k].to(model.device) for k in _order(b.inputs)] for b in batches if b.positions]
    records = sum(len(b.positions) for b in batches)
    with torch.inference_mode():
        model.net(*inputs[0])  # warm-up: TorchScript's profiling runs
        model.net(*inputs[-1])
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for args in inputs:
            logits = model.net(*args)
        logits.cpu()  # wait for the device (as scoring does with every batch's logits)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
    return records / (time.perf_counter() - start), records


def _order(inputs: dict[str, torch.Tensor]) -> list[str]:
    return ["input_ids", "attention_mask"] if "input_ids" in inputs else ["pixel_values"]


def scoring_rps(opts: ScoreOptions) -> float:
    """records/s of one whole scoring task (fresh output folder each time)."""
    with tempfile.TemporaryDirectory() as tmp:
        opts.output = str(Path(tmp) / "out")
        summary = score(opts)
    return summary["records_per_second"]


def processes_rps(model_path: Path, input_path: Path, processes: int, extra: list[str]) -> dict[str, float]:
    """score.py as `processes` parallel tasks (num_shards=processes): records/s of the job."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, str(REPO / "score.py"), f"model={model_path}",
                                   f"input={input_path}", f"output={out}", f"num_shards={processes}",
                                   f"shard_index={i}", "progress=false", *extra], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(processes)]
        logs = [p.communicate()[0].decode(errors="replace") for p in procs]
        wall = time.perf_counter() - start
        if any(p.returncode for p in procs):
            raise RuntimeError("score.py failed:\n" + "\n".join(log[-2000:] for log in logs))
        summary = json.loads((out / "_SUCCESS.json").read_text())
    return {"records_per_second": summary["records_per_second"],
            "records_per_second_with_startup": round(summary["total"] / wall, 2), "wall_s": round(wall, 2)}


def bench_scoring(model: str | Path, input: str | Path, columns: Columns = Columns(), batch_size: int = 64,
                  num_workers: int = 1, chunk_size: int = 1024, device: str = "auto", repeats: int = 3,
                  torch_threads: int | None = None, processes: bool = True) -> dict[str, Any]:
    """Scoring vs bare-loop throughput (ratio) and 1 vs 2 processes; a dict of figures."""
    model, input = Path(model), Path(input)
    if torch_threads:
        torch.set_num_threads(torch_threads)
    opts = ScoreOptions(model=str(model), input=str(input), output="", columns=columns, batch_size=batch_size,
                        num_workers=num_workers, chunk_size=chunk_size, device=device, torch_threads=torch_threads,
                        progress=False)
    bare_rps, records = bare_loop_rps(model, input, columns, batch_size, device)  # also warms caches up
    bare, scored = [], []
    for _ in range(repeats):  # alternate: machine load drifts
        bare.append(bare_loop_rps(model, input, columns, batch_size, device)[0])
        scored.append(scoring_rps(ScoreOptions(**{**opts.__dict__})))
    result: dict[str, Any] = {
        "model": str(model), "input": str(input), "records": records, "batch_size": batch_size,
        "num_workers": num_workers, "device": device, "torch_threads": torch.get_num_threads(),
        "bare_loop_rps": round(statistics.median(bare), 2), "scoring_rps": round(statistics.median(scored), 2),
        "bare_loop_rps_values": [round(v, 2) for v in bare], "scoring_rps_values": [round(v, 2) for v in scored],
        "scoring_over_bare_loop": round(statistics.median(scored) / statistics.median(bare), 3),
        "target_ratio": 0.9, "machine": machine(),
    }
    if processes:
        extra = [f"batch_size={batch_size}", f"num_workers={num_workers}", f"chunk_size={chunk_size}",
                 f"device={device}"]
        one = processes_rps(model, input, 1, extra + (["torch_threads=2"] if torch_threads is None else
                                                       [f"torch_threads={torch_threads}"]))
        # two tasks share the machine: one intra-op thread each, so they do not fight over the cores
        two = processes_rps(model, input, 2, extra + ["torch_threads=1"])
        result["processes"] = {"one": one, "two": two,
                               "two_over_one": round(two["records_per_second"] / one["records_per_second"], 3)}
    return result


def main() -> int:
    """Command line: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="export folder or .mar")
    parser.add_argument("--input", type=Path, required=True, help="image folder, file list or table")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--no-processes", action="store_true", help="skip the 1 vs 2 processes figures")
    args = parser.parse_args()
    result = bench_scoring(args.model, args.input, Columns(text=args.text_column), args.batch_size, args.num_workers,
                           args.chunk_size, args.device, args.repeats, args.torch_threads, not args.no_processes)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
