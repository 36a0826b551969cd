"""Split records across array tasks (by a stable hash of the record id) and a task's records into chunks.

A record belongs to task `hash(id) % num_shards`, whatever the input order, the machine or the Python
hash seed: N tasks of one array together score every record exactly once. Inside a task, records keep
their input order and are cut into fixed chunks of `chunk_size`; a chunk is the unit of output and of
resume.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

from serving.scoring.errors import ShardingError


@dataclass(frozen=True)
class Chunk:
    """One output unit: the `index`-th chunk of task `shard_index`, holding these record positions."""

    shard_index: int
    index: int
    positions: tuple[int, ...]

    @property
    def name(self) -> str:
        """File stem shared by the chunk's output and rejects files."""
        return f"part-{self.shard_index:05d}-{self.index:06d}"


def shard_of(record_id: str, num_shards: int) -> int:
    """The task a record belongs to: blake2b of the id, stable across processes and machines."""
    digest = hashlib.blake2b(record_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_shards


def resolve_shard(num_shards: int | None, shard_index: int | None,
                  env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Explicit values win; otherwise the Slurm array (task id - min id, task count); otherwise (1, 0)."""
    env = os.environ if env is None else env
    if num_shards is None and "SLURM_ARRAY_TASK_COUNT" in env:
        num_shards = int(env["SLURM_ARRAY_TASK_COUNT"])
        low, high = int(env.get("SLURM_ARRAY_TASK_MIN", "0")), int(env.get("SLURM_ARRAY_TASK_MAX", num_shards - 1))
        if high - low + 1 != num_shards:
            raise ShardingError(
                f"Slurm array ids {low}..{high} are not contiguous ({num_shards} tasks): submit --array=0-{num_shards - 1}"
                " or set num_shards/shard_index explicitly")
    if shard_index is None and "SLURM_ARRAY_TASK_ID" in env:
        shard_index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    num_shards = 1 if num_shards is None else int(num_shards)
    shard_index = 0 if shard_index is None else int(shard_index)
    if num_shards < 1:
        raise ShardingError(f"num_shards={num_shards}: must be >= 1")
    if not 0 <= shard_index < num_shards:
        raise ShardingError(f"shard_index={shard_index} is outside 0..{num_shards - 1} (num_shards={num_shards})")
    return num_shards, shard_index


def select_shard(ids: Sequence[str], num_shards: int, shard_index: int) -> list[int]:
    """Positions (in input order) of the records that belong to task `shard_index`."""
    if num_shards == 1:
        return list(range(len(ids)))
    return [i for i, record_id in enumerate(ids) if shard_of(record_id, num_shards) == shard_index]


def plan_chunks(positions: Sequence[int], chunk_size: int, shard_index: int) -> list[Chunk]:
    """Cut a task's positions into consecutive chunks of `chunk_size` (the last one may be shorter)."""
    if chunk_size < 1:
        raise ShardingError(f"chunk_size={chunk_size}: must be >= 1")
    return [Chunk(shard_index, n, tuple(positions[start:start + chunk_size]))
            for n, start in enumerate(range(0, len(positions), chunk_size))]


def plan_batches(chunks: Sequence[Chunk], batch_size: int) -> list[tuple[int, list[int]]]:
    """(chunk number, positions) batches that never cross a chunk boundary, so a chunk completes on its own."""
    if batch_size < 1:
        raise ShardingError(f"batch_size={batch_size}: must be >= 1")
    return [(chunk.index, list(chunk.positions[start:start + batch_size]))
            for chunk in chunks for start in range(0, len(chunk.positions), batch_size)]
