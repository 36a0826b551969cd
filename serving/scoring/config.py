"""What a scoring task is told to do: errors, options (ScoreOptions: the schema and defaults of score.py), and sharding.

Errors are what a user fixes by changing the command line or the input (score.py prints them without
a traceback). Sharding splits records across array tasks by a stable hash of the record id (whatever
the input order, machine or hash seed: N tasks together score every record exactly once) and cuts a
task's records, in input order, into fixed chunks of `chunk_size` (the unit of output and of resume).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig

from core.errors import UserError
from core.schema import validate
from serving.scoring.lm_options import JOB_TASKS, GenerationOptions, PerplexityOptions
from serving.scoring.slurm_array import ScoreSlurmConfig
from trainers.train_options import Launcher


class ScoringError(UserError, ValueError):
    """Base: the message names the problem and the fix (score.py prints it, exit 2)."""


class InputError(ScoringError):
    """The input as a whole cannot be read (missing file, unknown column, duplicate ids)."""


class ModelLoadError(ScoringError):
    """The model path is not something scoring can load."""


class ShardingError(ScoringError):
    """num_shards / shard_index (or the Slurm array variables behind them) are inconsistent."""


class PlanMismatch(ScoringError):
    """The output folder was started with other settings (input, model, shards, chunk size, format)."""



FORMATS = ("parquet", "jsonl")


@dataclass(frozen=True)
class Columns:
    """Column names of a table input: the record id (None: the path, or else the row number), text, path, prompt."""

    id: str | None = None
    text: str = "text"  # a text classifier's input; the documents of task=perplexity
    path: str = "path"
    prompt: str = "prompt"  # a language model's prompts (generation)


@dataclass
class ScoreOptions:
    """score.py's config: schema and defaults in one place (conf/score/score.yaml only picks launcher/slurm)."""

    GROUPS = ("launcher", "slurm")  # picked by conf/score/score.yaml's defaults list: not in `score_options`

    model: str      # export folder or .mar archive
    input: str      # image folder, .txt file list, or .csv/.jsonl/.parquet table
    output: str     # output folder: part-*.parquet|jsonl, _rejects.jsonl, _SUCCESS.json
    format: str = "parquet"
    columns: Columns = field(default_factory=Columns)  # table inputs only
    top_k: int = 5
    task: str | None = None  # None: the model's own answers (an LM: generation); perplexity: NLL per text (LMs)
    generation: GenerationOptions = field(default_factory=GenerationOptions)  # LM prompts: the handler's fields
    perplexity: PerplexityOptions = field(default_factory=PerplexityOptions)  # LM texts: sliding-window stride
    batch_size: int = 64
    num_workers: int = 2  # DataLoader workers decoding records (0: in the main process)
    device: str = "auto"  # auto (GPU when present) | cpu | cuda | cuda:N
    torch_threads: int | None = None  # intra-op threads of the forward pass; None: torch's default
    chunk_size: int = 1024  # records per output file (atomic writes, resume)
    num_shards: int | None = None  # None: SLURM_ARRAY_TASK_COUNT, else 1
    shard_index: int | None = None  # None: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, else 0
    progress: bool = True
    name: str = "score"  # job name on Slurm: shipyard-score
    launcher: Launcher = field(default_factory=Launcher)  # the launcher group (conf/launcher)
    slurm: ScoreSlurmConfig = field(default_factory=ScoreSlurmConfig)  # the slurm group (the `slurm/score` node)

    def check(self) -> list[str]:
        """Value rules beyond the types, each naming its key."""
        problems = []
        if self.format not in FORMATS:
            problems.append(f"format={self.format!r}: use one of {', '.join(FORMATS)}")
        for key in ("top_k", "batch_size", "chunk_size"):
            if getattr(self, key) < 1:
                problems.append(f"{key}={getattr(self, key)}: must be >= 1")
        if self.task is not None and self.task not in JOB_TASKS:
            problems.append(f"task={self.task!r}: use one of {', '.join(JOB_TASKS)} (language models), or leave it "
                            "unset for the model's own answers")
        if self.num_workers < 0:
            problems.append(f"num_workers={self.num_workers}: must be >= 0")
        try:
            resolve_shard(self.num_shards, self.shard_index)
        except ShardingError as err:
            problems.append(str(err))
        return problems


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




def options_from_config(cfg: DictConfig | Mapping[str, Any]) -> ScoreOptions:
    """The composed config checked against ScoreOptions (unknown keys, types, values): ConfigError, exit 2."""
    return validate(ScoreOptions, cfg)
