"""`python score.py ... launcher=slurm slurm.array=N`: render slurm/score_array.sbatch and submit it.

The same three steps as training jobs (trainers/slurm.py): resources from the `slurm` group, render the
template, write + submit. Each array task runs `python score.py <these overrides>` without the launcher
and with absolute paths; its shard comes from the array variables, so N tasks cover the input once.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from core.schema import validate
from trainers.config_check import ConfigError
from trainers.resolvers import REPO_ROOT
from trainers.rundir import atomic_write_json, now_iso
from trainers.slurm import SlurmConfig, SlurmResources, render, submit, write_script

TEMPLATE = "score_array.sbatch"
SLURM_DIR = "_slurm"  # inside the output folder: the rendered script and the submission record
PATH_KEYS = ("model", "input", "output")
# set by the array itself (shards) or meaningless inside the job (launcher, slurm.*)
_DROPPED = ("launcher", "num_shards", "shard_index")


@dataclass
class ScoreSlurmConfig(SlurmConfig):
    """score.py's `slurm` group: a training job's keys plus the array's shape (stored as the `slurm/score` node)."""

    array: int = 1                    # array tasks; task i scores shard i of slurm.array
    max_parallel: int | None = None   # at most this many tasks at once (--array=0-N%M); None: no limit


def override_key(override: str) -> str:
    """`+a.b=1` / `~a.b` / `a.b=1` → `a.b`."""
    return override.lstrip("~+").split("=", 1)[0].strip()


def task_overrides(overrides: list[str], cfg: DictConfig) -> list[str]:
    """The array tasks' score.py arguments: the user's overrides, paths made absolute, launcher/shards dropped."""
    kept = []
    for override in overrides:
        key = override_key(override)
        if key in _DROPPED or key == "slurm" or key.startswith("slurm."):
            continue
        if key in PATH_KEYS:
            override = f"{key}={Path(str(cfg[key])).resolve()}"  # the job runs in the repository, not here
        kept.append(override)
    return kept


def array_spec(cfg: DictConfig) -> tuple[int, int | None]:
    """slurm.array (tasks) and slurm.max_parallel, checked."""
    slurm = validate(ScoreSlurmConfig, cfg.slurm, name="slurm")
    array, parallel = slurm.array, slurm.max_parallel
    if array < 1:
        raise ConfigError(f"slurm.array={array!r}: the number of array tasks must be a positive integer")
    if parallel is not None and parallel < 1:
        raise ConfigError(f"slurm.max_parallel={parallel!r}: must be a positive integer or null")
    if (slurm.gpus_per_node or 0) > 1:
        raise ConfigError("each scoring task uses one GPU: set slurm.gpus_per_node=1 and raise slurm.array instead")
    if cfg.get("num_shards") is not None or cfg.get("shard_index") is not None:
        raise ConfigError("launcher=slurm splits the input over slurm.array tasks: leave num_shards/shard_index unset")
    return array, parallel


def render_array_script(cfg: DictConfig, overrides: list[str]) -> tuple[str, SlurmResources, str]:
    """The sbatch script text, the resources it asks for, and each task's command."""
    array, parallel = array_spec(cfg)
    slurm = validate(ScoreSlurmConfig, cfg.slurm, name="slurm")
    # one task per array element on one node; GPUs per node = GPUs per task
    resources = SlurmResources.from_config(replace(slurm, nodes=1, ntasks_per_node=slurm.gpus_per_node or 1))
    output = Path(str(cfg.output)).resolve()
    command = shlex.join([sys.executable, "score.py", *task_overrides(overrides, cfg)])
    text = render(TEMPLATE, {"slurm": resources.as_dict(), "array": array, "max_parallel": parallel,
                             "log_dir": str(output / "_logs"), "workdir": str(REPO_ROOT), "command": command})
    return text, resources, command


def submit_scoring(cfg: DictConfig, overrides: list[str]) -> str | None:
    """Render, write and submit (slurm.dry_run=true: print) the array job; returns its job id."""
    text, resources, command = render_array_script(cfg, overrides)
    output = Path(str(cfg.output)).resolve()
    if resources.dry_run:
        print(text, end="")
        print(f"# dry run: not submitted (output folder {output})")
        return None
    (output / "_logs").mkdir(parents=True, exist_ok=True)  # Slurm opens the log files before the job runs
    script = write_script(text, output / SLURM_DIR / TEMPLATE)
    job_id = submit(script)
    record: dict[str, Any] = {"job_id": job_id, "submitted": now_iso(), "script": str(script),
                              "array": cfg.slurm.array, "logs": str(output / "_logs" / f"slurm-{job_id}_*.out"),
                              "command": command, "resources": resources.as_dict()}
    atomic_write_json(output / SLURM_DIR / f"submission-{job_id}.json", record)
    print(f"Submitted batch job {job_id}: array of {cfg.slurm.array} scoring tasks ({script})\n"
          f"logs: {record['logs']}\nwhen all tasks are done: {output / '_SUCCESS.json'}")
    return job_id
