"""The plan every task of a job must agree on, per-task summaries, and the final `_SUCCESS.json`.

`_plan.json` pins what the output folder holds (input, model, sharding, chunking, format): a rerun with
different settings would mix incompatible chunks, so it is refused with the fix. Each task writes
`_shards/shard-S-of-N.json` when all its chunks are complete; whichever task completes the set writes
the merged `_rejects.jsonl` and `_SUCCESS.json` (idempotent: the same content from the same chunks).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from serving.scoring.errors import PlanMismatch
from serving.scoring.writer import encode_jsonl, read_rejects
from trainers.rundir import atomic_write_bytes, atomic_write_json, now_iso

PLAN_FILE = "_plan.json"
SHARDS_DIR = "_shards"
SUCCESS_FILE = "_SUCCESS.json"
REJECTS_FILE = "_rejects.jsonl"


def ensure_plan(output: Path, plan: dict[str, Any]) -> None:
    """Write the plan on first use; afterwards every task and rerun must present the same one."""
    path = output / PLAN_FILE
    if path.exists():
        existing = json.loads(path.read_text())
        diffs = {k: (existing.get(k), plan.get(k)) for k in sorted(set(existing) | set(plan))
                 if existing.get(k) != plan.get(k)}
        if diffs:
            detail = "; ".join(f"{k}: was {old!r}, now {new!r}" for k, (old, new) in diffs.items())
            raise PlanMismatch(f"output={output} holds a scoring job with other settings ({detail}). Rerun with "
                               "the same settings to resume, or choose a new output folder")
        return
    atomic_write_json(path, plan)


def shard_summary_path(output: Path, shard_index: int, num_shards: int) -> Path:
    """Where task `shard_index` records that it is done."""
    return output / SHARDS_DIR / f"shard-{shard_index:05d}-of-{num_shards:05d}.json"


def write_shard_summary(output: Path, summary: dict[str, Any]) -> None:
    """Record one task's counts and throughput (atomically)."""
    atomic_write_json(shard_summary_path(output, summary["shard_index"], summary["num_shards"]), summary)


def finalize_if_complete(output: Path, num_shards: int, model: dict[str, Any]) -> dict[str, Any] | None:
    """When every task is done: merged rejects + `_SUCCESS.json` with counts, records/s and the model."""
    shards = []
    for index in range(num_shards):
        path = shard_summary_path(output, index, num_shards)
        if not path.exists():
            return None
        shards.append(json.loads(path.read_text()))
    rejects = read_rejects(output)
    atomic_write_bytes(output / REJECTS_FILE, encode_jsonl(rejects))
    scored = sum(s["scored"] for s in shards)
    rejected = sum(s["rejected"] for s in shards)
    busy = sum(s["elapsed_s"] for s in shards)
    processed = sum(s["processed_this_run"] for s in shards)
    summary = {
        "scored": scored,
        "rejected": rejected,
        "total": scored + rejected,
        "input_records": shards[0]["input_records"],
        # wall-clock rate of the job as a whole (tasks may overlap), and the sum of per-task rates
        "records_per_second": _rate(processed, _wall_span(shards)),
        "records_per_second_per_task": [s["records_per_second"] for s in shards],
        "task_seconds": round(busy, 3),
        "num_shards": num_shards,
        "format": shards[0]["format"],
        "files": sorted(p.name for p in output.glob("part-*") if p.is_file()),
        "rejects_file": REJECTS_FILE,
        "model": model,
        "finished": now_iso(),
    }
    if summary["total"] != summary["input_records"]:
        raise RuntimeError(f"{output}: {summary['total']} records accounted for, but the input has "
                           f"{summary['input_records']}: the output folder was modified during the job")
    atomic_write_json(output / SUCCESS_FILE, summary)
    return summary


def _wall_span(shards: list[dict[str, Any]]) -> float:
    starts = [s["started_unix"] for s in shards if s["processed_this_run"]]
    ends = [s["ended_unix"] for s in shards if s["processed_this_run"]]
    return max(ends) - min(starts) if starts else 0.0


def _rate(records: int, seconds: float) -> float:
    return round(records / seconds, 2) if seconds > 0 else 0.0
