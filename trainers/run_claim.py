"""One run directory holds one run: a re-used run_id continues it (resume=auto) or replaces it (overwrite=true).

Without this a re-run with the same `run_id`, or every trial of `-m ... run_id=fixed`, wrote into one folder:
config.yaml from one trial, the best checkpoint from another, every trial's events in one `tb/`.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, open_dict

from core.errors import ConfigError
from core.rundir import TRAIN_LOG, RunDir


def _swept(key: str) -> bool:
    """Whether the multirun sweeps `key` itself (`run_id=a,b` on the command line or in the sweeper's params)."""
    from hydra.core.hydra_config import HydraConfig

    params = HydraConfig.get().sweeper.get("params") or {}
    return key in params or any(a.startswith(f"{key}=") and "," in a for a in sys.argv[1:])


def distinct_trial_run_id(cfg: DictConfig) -> None:
    """In a multirun, a fixed `run_id` becomes `<run_id>_<job number>`: every trial gets its own directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN or _swept("run_id"):
        return
    suffix = f"_{HydraConfig.get().job.num}"
    if not str(cfg.run_id).endswith(suffix):  # the default run id already carries the job number
        with open_dict(cfg):
            cfg.run_id = f"{cfg.run_id}{suffix}"


def claim_run_dir(run_dir: Path, resume: str | None, ckpt_path: str | None, overwrite: bool) -> None:
    """Rank 0, before any work: refuse a directory holding another run unless resuming it or overwriting it."""
    run = RunDir(run_dir)
    if not run.is_run() or resume == "auto":
        return
    if ckpt_path and Path(ckpt_path).resolve().is_relative_to(run_dir.resolve()):
        return  # continuing this run from one of its own checkpoints
    if overwrite:  # the earlier run goes; Hydra's train.log of this attempt is already open, so it stays
        for entry in run_dir.iterdir():
            if entry.name != TRAIN_LOG:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        return
    info = run.read_info(default={"start_time": "?"})
    hint = "" if not ckpt_path else " (ckpt_path= from elsewhere starts a new run: give it a new run_id)"
    raise ConfigError(f"run directory {run_dir} already holds a run (started {info.get('start_time', '?')}): "
                      f"pass resume=auto to continue it, overwrite=true to replace it, or a new run_id{hint}")

