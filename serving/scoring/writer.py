"""Output chunks: scored rows as Parquet (default) or JSONL, plus their rejects, each written atomically.

Layout of `output/`:
  part-SSSSS-CCCCCC.parquet|jsonl   scored rows of chunk C of task S (what readers glob / read as a dataset)
  _rejects/part-SSSSS-CCCCCC.jsonl  the chunk's rejected records: {"id", "reason"}
A chunk is complete when its rows file exists (it is renamed into place last) and rows + rejects account
for exactly the chunk's record ids. Names starting with `_` or `.` are skipped by Parquet dataset readers.
`_plan.json` pins what the folder holds (a rerun with other settings is refused); each task writes
`_shards/shard-S-of-N.json`; whichever completes the set writes `_rejects.jsonl` and `_SUCCESS.json`.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from runtime.tasks import runtime_task
from serving.scoring import perplexity
from serving.scoring.config import Chunk, FORMATS, PlanMismatch
from trainers.rundir import atomic_write_bytes, atomic_write_json, now_iso


REJECTS_DIR = "_rejects"
# the type names runtime/tasks/ modules give their SCORE_COLUMNS (the runtime does not import pyarrow)
ARROW_TYPES = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(),
               "list<string>": pa.list_(pa.string()), "list<float64>": pa.list_(pa.float64())}


# scoring jobs that no handler serves, by name: the module declaring their SCORE_COLUMNS + score_columns
JOB_COLUMNS = {"perplexity": perplexity}


def output_columns(task: str | None) -> Any:
    """The module naming a job's columns: a scoring-only job (JOB_COLUMNS), else the runtime task's."""
    return JOB_COLUMNS[task] if task in JOB_COLUMNS else runtime_task(task)


def row_schema(task: str | None = None) -> pa.Schema:
    """id, the task's own columns (runtime/tasks/<task>.py SCORE_COLUMNS, or JOB_COLUMNS), model name and version."""
    columns = output_columns(task).SCORE_COLUMNS
    return pa.schema([("id", pa.string()), *((name, ARROW_TYPES[kind]) for name, kind in columns),
                      ("model_name", pa.string()), ("model_version", pa.string())])


ROW_SCHEMA = row_schema()  # classification's


def check_format(fmt: str) -> str:
    """Validate `format=`."""
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}: use one of {FORMATS}")
    return fmt


def rows_path(output: Path, chunk: Chunk, fmt: str) -> Path:
    """Where a chunk's scored rows go."""
    return output / f"{chunk.name}.{fmt}"


def rejects_path(output: Path, chunk: Chunk) -> Path:
    """Where a chunk's rejected records go."""
    return output / REJECTS_DIR / f"{chunk.name}.jsonl"


def score_rows(ids: Sequence[str], predictions: Sequence[dict[str, Any]], model_name: str,
               model_version: str, task: str | None = None) -> list[dict[str, Any]]:
    """Output rows from the handler's answers and their record ids: the task's `score_columns` of each answer."""
    score_columns = output_columns(task).score_columns
    return [{"id": record_id, **score_columns(pred), "model_name": model_name, "model_version": model_version}
            for record_id, pred in zip(ids, predictions)]


def encode_rows(rows: list[dict[str, Any]], fmt: str, task: str | None = None) -> bytes:
    """Serialise rows in the output format."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=row_schema(task)), buffer)
    return buffer.getvalue()


def write_chunk(output: Path, chunk: Chunk, rows: list[dict[str, Any]], rejects: list[dict[str, str]],
                fmt: str, task: str | None = None) -> None:
    """Rejects first, rows last: the rows file's presence is what marks the chunk complete."""
    atomic_write_bytes(rejects_path(output, chunk), encode_jsonl(rejects))
    atomic_write_bytes(rows_path(output, chunk, fmt), encode_rows(rows, fmt, task))


def encode_jsonl(records: list[dict[str, Any]]) -> bytes:
    """One JSON object per line."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file (empty lines ignored)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_row_ids(path: Path, fmt: str) -> list[str]:
    """The record ids in a rows file."""
    if fmt == "jsonl":
        return [r["id"] for r in read_jsonl(path)]
    return pq.read_table(path, columns=["id"]).column("id").to_pylist()


def chunk_status(output: Path, chunk: Chunk, expected_ids: Sequence[str], fmt: str) -> tuple[int, int] | None:
    """(scored, rejected) of a complete chunk, or None when it must be (re)scored."""
    rows_file, rejects_file = rows_path(output, chunk, fmt), rejects_path(output, chunk)
    if not rows_file.exists() or not rejects_file.exists():
        return None
    try:
        scored = read_row_ids(rows_file, fmt)
        rejected = [r["id"] for r in read_jsonl(rejects_file)]
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None  # unreadable despite the atomic rename (e.g. a disk fault): score it again
    if len(scored) + len(rejected) != len(expected_ids) or set(scored) | set(rejected) != set(expected_ids):
        return None
    return len(scored), len(rejected)


def remove_stale_temp_files(output: Path, shard_index: int) -> int:
    """Delete this task's half-written temp files left by a killed run (never another task's)."""
    removed = 0
    for folder in (output, output / REJECTS_DIR):
        if folder.is_dir():
            for tmp in folder.glob(f".part-{shard_index:05d}-*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def read_output(output: str | Path) -> list[dict[str, Any]]:
    """All scored rows of an output folder (Parquet or JSONL parts), in part order."""
    output = Path(output)
    rows: list[dict[str, Any]] = []
    for part in sorted(output.glob("part-*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    for part in sorted(output.glob("part-*.jsonl")):
        rows.extend(read_jsonl(part))
    return rows


def read_rejects(output: str | Path) -> list[dict[str, Any]]:
    """All rejected records of an output folder, from the per-chunk files."""
    rejected: list[dict[str, Any]] = []
    for part in sorted((Path(output) / REJECTS_DIR).glob("part-*.jsonl")):
        rejected.extend(read_jsonl(part))
    return rejected



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
