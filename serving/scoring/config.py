"""`conf/score/score.yaml` → ScoreOptions, with the checks that must fail before any work."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from serving.scoring.errors import ScoringConfigError, ScoringError, ShardingError
from serving.scoring.options import FORMATS, Columns, ScoreOptions
from serving.scoring.sharding import resolve_shard
from trainers.config_check import ConfigError, check_top_level
from trainers.slurm import SubmitError

SCORE_SCHEMA: dict[str, tuple[type, ...]] = {
    "model": (str,), "input": (str,), "output": (str,), "format": (str,), "columns": (),
    "top_k": (int,), "batch_size": (int,), "num_workers": (int,), "device": (str,),
    "torch_threads": (int, type(None)), "chunk_size": (int,),
    "num_shards": (int, type(None)), "shard_index": (int, type(None)), "progress": (bool,),
    "name": (str,), "launcher": (), "slurm": (),
}


# every error a user can fix by changing the command line or the input: printed without a traceback
USER_ERRORS = (ScoringError, ConfigError, SubmitError)


def options_from_config(cfg: DictConfig) -> ScoreOptions:
    """Validate the top-level keys and values, then build plain options."""
    check_top_level(cfg, SCORE_SCHEMA)
    problems = []
    if cfg.format not in FORMATS:
        problems.append(f"format={cfg.format!r}: use one of {', '.join(FORMATS)}")
    for key in ("top_k", "batch_size", "chunk_size"):
        if cfg[key] < 1:
            problems.append(f"{key}={cfg[key]}: must be >= 1")
    if cfg.num_workers < 0:
        problems.append(f"num_workers={cfg.num_workers}: must be >= 0")
    try:
        resolve_shard(cfg.num_shards, cfg.shard_index)
    except ShardingError as err:
        problems.append(str(err))
    if problems:
        raise ScoringConfigError("invalid config:\n  - " + "\n  - ".join(problems))
    columns = OmegaConf.to_container(cfg.columns, resolve=True)
    return ScoreOptions(
        model=str(cfg.model), input=str(cfg.input), output=str(cfg.output), format=cfg.format,
        columns=Columns(**columns), top_k=cfg.top_k, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
        device=cfg.device, torch_threads=cfg.torch_threads, chunk_size=cfg.chunk_size, num_shards=cfg.num_shards, shard_index=cfg.shard_index,
        progress=cfg.progress,
    )
