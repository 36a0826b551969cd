"""OmegaConf resolvers shared by every entry point: `${repo_root:}`, `${shipyard_run_id:}`, `${rank_zero_path:P}`,
`${shipyard_task:ATTR}` (a class attribute of the model's task module, e.g. its checkpoint `monitor`)."""
from __future__ import annotations

import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_ID_ENV = "SHIPYARD_RUN_ID"


@lru_cache(maxsize=None)
def _process_timestamp() -> str:
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def default_run_id() -> str:
    """One id per run that every rank and a requeued job agree on.

    SHIPYARD_RUN_ID (set by train.py for the ranks it starts) > Slurm job id (stable across requeue)
    > torchrun's rdzv id > a timestamp fixed once per process (+ job number in a local multirun).
    """
    if os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"slurm-{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    if os.environ.get("TORCHELASTIC_RUN_ID", "none") not in ("none", ""):
        return f"torchrun-{os.environ['TORCHELASTIC_RUN_ID']}"
    run_id = _process_timestamp()
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            run_id = f"{run_id}_{HydraConfig.get().job.num}"
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    return run_id


def process_rank() -> int:
    """This process's global rank as its launcher set it (torchrun, srun, Lightning's own children); 0 if none."""
    for var in ("RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return int(os.environ.get("NODE_RANK") or 0) + int(os.environ.get("LOCAL_RANK") or 0)  # > 0 off rank 0


def rank_zero_path(path: str) -> str:
    """`path` on rank 0, os.devnull elsewhere: ranks share one run directory, one process writes each log."""
    return path if process_rank() == 0 else os.devnull


def task_attribute(name: str, *, _root_: Any) -> Any:
    """`${shipyard_task:monitor}`: the attribute of the task module that model._target_ names (trainers/tasks/)."""
    from hydra.utils import get_class

    target = _root_.model._target_
    cls = get_class(target)
    if not hasattr(cls, name):
        raise ValueError(f"${{shipyard_task:{name}}}: model._target_={target!r} has no {name!r}; "
                         "a model config names a trainers.tasks module (TaskModule subclass)")
    return getattr(cls, name)


def register() -> None:
    """Register the resolvers and store the schema nodes conf/train.yaml composes (idempotent)."""
    from trainers.train_options import store_nodes

    store_nodes()
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("shipyard_run_id"):
        OmegaConf.register_new_resolver("shipyard_run_id", default_run_id, use_cache=False)
    if not OmegaConf.has_resolver("shipyard_cv_mode"):  # cv.folds=K → a multirun over the folds
        from datamodules.cv import cv_mode, cv_sweep_params

        OmegaConf.register_new_resolver("shipyard_cv_mode", cv_mode)
        OmegaConf.register_new_resolver("shipyard_cv_params", cv_sweep_params)
    if not OmegaConf.has_resolver("shipyard_task"):
        OmegaConf.register_new_resolver("shipyard_task", task_attribute)
    if not OmegaConf.has_resolver("rank_zero_path"):
        OmegaConf.register_new_resolver("rank_zero_path", rank_zero_path)
