"""Errors a user fixes by changing the command line or the input: score.py prints them without a traceback."""
from __future__ import annotations


class ScoringError(ValueError):
    """Base: the message names the problem and the fix."""


class ScoringConfigError(ScoringError):
    """A wrong value in the scoring config."""


class InputError(ScoringError):
    """The input as a whole cannot be read (missing file, unknown column, duplicate ids)."""


class ModelLoadError(ScoringError):
    """The model path is not something scoring can load."""


class ShardingError(ScoringError):
    """num_shards / shard_index (or the Slurm array variables behind them) are inconsistent."""


class PlanMismatch(ScoringError):
    """The output folder was started with other settings (input, model, shards, chunk size, format)."""
