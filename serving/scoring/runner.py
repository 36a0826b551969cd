"""score(): one task of a batch scoring job, resumable chunk by chunk.

Read the input → keep this task's records (stable hash of the id) → cut them into fixed chunks → skip
the chunks already complete in the output → decode the rest in DataLoader workers → batched forward
passes → postprocess → write each chunk (rejects, then rows) atomically → summarise. `Progress` shows
records/s (tqdm on a terminal; a periodic log line in batch jobs' log files).
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from tqdm import tqdm

from serving.scoring.config import Chunk, ScoreOptions, plan_batches, plan_chunks, resolve_shard, select_shard
from serving.scoring.lock import acquire_shard_lock
from serving.scoring.inputs import Collate, RecordDataset, RecordTable, make_loader, read_records
from serving.scoring.kinds import input_kind
from serving.scoring.lm import ScoringLM
from serving.scoring.model import ScoringModel, load_model
from serving.scoring.writer import (check_format, chunk_status, encode_rows, ensure_plan, finalize_if_complete,
                                    remove_stale_temp_files, score_rows, write_chunk, write_shard_summary)


log = logging.getLogger(__name__)
AnyModel = ScoringModel | ScoringLM  # a classifier-style export, or a language model's (serving/scoring/lm.py)


class Progress:
    """Counts scored and rejected records; shows the rate as they come."""

    def __init__(self, total: int, enabled: bool = True, log_every_s: float = 30.0) -> None:
        self.total = total
        self.done = 0
        self.rejected = 0
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.log_every_s = log_every_s
        self._bar: tqdm | None = None
        self._start = self._last_log = time.monotonic()

    def __enter__(self) -> "Progress":
        if self.interactive:
            self._bar = tqdm(total=self.total, unit="rec", unit_scale=True, desc="scoring", dynamic_ncols=True)
        return self

    def advance(self, records: int, rejected: int = 0) -> None:
        """`records` more are done, `rejected` of them rejected."""
        self.done += records
        self.rejected += rejected
        if self._bar is not None:
            self._bar.update(records)
            if rejected:
                self._bar.set_postfix(rejected=self.rejected, refresh=False)
        elif self.enabled and time.monotonic() - self._last_log >= self.log_every_s:
            self._last_log = time.monotonic()
            self._log()

    def rate(self) -> float:
        """Records per second so far."""
        elapsed = time.monotonic() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def _log(self) -> None:
        log.info("scoring: %d/%d records (%d rejected), %.1f records/s", self.done, self.total, self.rejected,
                 self.rate())

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
        if self.enabled and not self.interactive:
            self._log()



class Rejected(dict):
    """A record's {"reason", "code"}, told apart from a prediction dict by its type."""


def score(opts: ScoreOptions) -> dict[str, Any]:
    """Score this task's records into `opts.output`; returns the task summary (+ `_SUCCESS.json` if last)."""
    started = time.time()
    fmt = check_format(opts.format)
    if opts.torch_threads:  # e.g. Slurm's cpus-per-task minus the decoding workers
        torch.set_num_threads(opts.torch_threads)
    num_shards, shard_index = resolve_shard(opts.num_shards, opts.shard_index)
    output = Path(opts.output)
    output.mkdir(parents=True, exist_ok=True)
    lock = acquire_shard_lock(output, shard_index)  # before any work; released at return or process end
    model = load_model(opts.model, opts.device, opts)
    kind = input_kind(model)
    table = read_records(opts.input, model.spec.kind, opts.columns, model.spec)
    chunks = plan_chunks(select_shard(table.ids, num_shards, shard_index), opts.chunk_size, shard_index)
    ensure_plan(output, {
        "input": str(Path(opts.input).resolve()), "input_fingerprint": table.fingerprint(),
        "input_records": len(table), "model": {"name": model.name, "version": model.version,
                                               "fingerprint": model.fingerprint},
        "num_shards": num_shards, "chunk_size": opts.chunk_size, "format": fmt, **kind.settings(model, opts),
    })
    remove_stale_temp_files(output, shard_index)
    done = {c.index: chunk_status(output, c, [table.ids[p] for p in c.positions], fmt) for c in chunks}
    pending = [c for c in chunks if done[c.index] is None]
    scored = sum(s[0] for s in done.values() if s)
    rejected = sum(s[1] for s in done.values() if s)
    log.info("task %d/%d: %d records in %d chunks, %d already complete, %d to score",
             shard_index, num_shards, sum(len(c.positions) for c in chunks), len(chunks),
             len(chunks) - len(pending), sum(len(c.positions) for c in pending))
    warmup_s = warm_up(model, opts.batch_size, fmt) if pending else 0.0
    loop_start = time.time()
    new_scored, new_rejected = run_chunks(model, table, pending, output, opts, fmt)
    loop_end = time.time()
    processed = new_scored + new_rejected
    summary = {
        "shard_index": shard_index, "num_shards": num_shards, "format": fmt,
        "input_records": len(table), "task_records": sum(len(c.positions) for c in chunks),
        "scored": scored + new_scored, "rejected": rejected + new_rejected,
        "chunks": len(chunks), "chunks_resumed": len(chunks) - len(pending),
        "processed_this_run": processed, "elapsed_s": round(loop_end - loop_start, 3),
        "records_per_second": round(processed / (loop_end - loop_start), 2) if processed else 0.0,
        "total_seconds": round(loop_end - started, 3), "warmup_s": round(warmup_s, 3), "device": str(model.device),
        "started_unix": loop_start, "ended_unix": loop_end,
    }
    write_shard_summary(output, summary)
    final = finalize_if_complete(output, num_shards, model.identity())
    lock.close()
    return {**summary, "success": final}


def warm_up(model: AnyModel, batch_size: int, fmt: str) -> float:
    """One-time costs before the timed loop: TorchScript profiles its first call, pyarrow loads its writer."""
    start = time.time()
    kind = input_kind(model)
    kind.answers(model, kind.warm_up_inputs(model, batch_size), 1)  # one real-shaped forward on zeros
    encode_rows([], fmt, model.task)
    return time.time() - start


def run_chunks(model: AnyModel, table: RecordTable, chunks: list[Chunk], output: Path, opts: ScoreOptions,
               fmt: str) -> tuple[int, int]:
    """Score the given chunks in plan order; each chunk is written as soon as its last batch is done."""
    if not chunks:
        return 0, 0
    batches = plan_batches(chunks, opts.batch_size)
    kind = input_kind(model)
    dataset = RecordDataset(table, kind.preparer(model), kind.with_id)
    loader = make_loader(dataset, [b for _, b in batches], Collate(kind.collate(model)),
                         opts.num_workers, pin_memory=model.device.type == "cuda")
    by_index = {c.index: c for c in chunks}
    remaining = {c.index: len(c.positions) for c in chunks}
    results: dict[int, dict[int, Any]] = {c.index: {} for c in chunks}
    total_scored = total_rejected = 0
    with Progress(sum(remaining.values()), enabled=opts.progress) as progress:
        for (chunk_index, _), batch in zip(batches, loader):
            collected = results[chunk_index]
            if batch.positions:
                collected.update(zip(batch.positions, kind.answers(model, batch.inputs, opts.top_k)))
            for position, error in batch.rejected:
                collected[position] = Rejected(error)
            remaining[chunk_index] -= len(batch.positions) + len(batch.rejected)
            progress.advance(len(batch.positions) + len(batch.rejected), len(batch.rejected))
            if remaining[chunk_index] == 0:
                n_scored, n_rejected = flush_chunk(by_index[chunk_index], results.pop(chunk_index), table, model,
                                                   output, fmt)
                total_scored += n_scored
                total_rejected += n_rejected
    return total_scored, total_rejected


def flush_chunk(chunk: Chunk, collected: dict[int, Any], table: RecordTable, model: AnyModel, output: Path,
                fmt: str) -> tuple[int, int]:
    """Write one finished chunk in input order: predictions to rows, `Rejected` entries to rejects."""
    good = [(table.ids[p], collected[p]) for p in chunk.positions if not isinstance(collected[p], Rejected)]
    bad = [{"id": table.ids[p], **collected[p]} for p in chunk.positions if isinstance(collected[p], Rejected)]
    rows = score_rows([i for i, _ in good], [pred for _, pred in good], model.name, model.version, model.task)
    write_chunk(output, chunk, rows, bad, fmt, model.task)
    return len(rows), len(bad)
