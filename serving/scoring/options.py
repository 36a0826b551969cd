"""What a scoring task is told to do (plain data, no torch: config checks stay fast)."""
from __future__ import annotations

from dataclasses import dataclass, field

FORMATS = ("parquet", "jsonl")


@dataclass(frozen=True)
class Columns:
    """Column names of a table input: the record id (None: the path, or else the row number), text, path."""

    id: str | None = None
    text: str = "text"
    path: str = "path"


@dataclass
class ScoreOptions:
    """What `conf/score/score.yaml` configures (library code never touches Hydra)."""

    model: str
    input: str
    output: str
    format: str = "parquet"
    columns: Columns = field(default_factory=Columns)
    top_k: int = 5
    batch_size: int = 64
    num_workers: int = 2
    device: str = "auto"
    torch_threads: int | None = None
    chunk_size: int = 1024
    num_shards: int | None = None
    shard_index: int | None = None
    progress: bool = True
