"""`python train.py ... launcher=slurm`: render slurm/train.sbatch into the run directory and submit it.

The job runs `srun python train.py <this run's Hydra overrides>` minus `launcher=slurm`, plus `run_id=<this id>`
(every rank and every requeue of the job use the same run directory) and `resume=auto` (a requeued job
continues from the newest complete checkpoint there).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from trainers.config_check import ConfigError
from trainers.cost import CPU, CostEstimate, estimate
from trainers.resolvers import REPO_ROOT
from trainers.rundir import atomic_write_json, now_iso
from trainers.slurm import SlurmResources, parse_time, render, submit, write_script

TEMPLATE = "train.sbatch"
SCRIPT_NAME = "train.sbatch"
# keys the job sets itself (launcher: it runs in place; run_id/resume: fixed for requeues)
_REPLACED = ("launcher", "run_id", "resume", "slurm.dry_run")


def override_key(override: str) -> str:
    """`+a.b=1` / `~a.b` / `a.b=1` → `a.b`."""
    return override.lstrip("~+").split("=", 1)[0].strip()


def job_overrides(task_overrides: list[str], cfg: DictConfig, resources: SlurmResources) -> list[str]:
    """The job's train.py arguments: this run's overrides, pinned run_id, resume=auto, the allocation's shape."""
    kept = [o for o in task_overrides if override_key(o) not in _REPLACED]
    kept += [f"run_id={cfg.run_id}", "resume=auto"]
    # the allocation decides devices/nodes: keep the trainer in step with what was asked of Slurm
    if cfg.trainer.get("num_nodes") != resources.nodes:
        kept = [o for o in kept if override_key(o) != "trainer.num_nodes"] + [f"trainer.num_nodes={resources.nodes}"]
    if cfg.trainer.get("devices") != resources.ntasks_per_node:
        kept = [o for o in kept if override_key(o) != "trainer.devices"] + [f"trainer.devices={resources.ntasks_per_node}"]
    return kept


def requested_cost(cfg: DictConfig, resources: SlurmResources) -> CostEstimate:
    """Device-hours the job asks for (devices x nodes x time limit) priced with the `cost` table."""
    kind = resources.device_kind or ("gpu" if resources.gpus_per_node else CPU)
    hours = parse_time(resources.time) / 3600.0
    return estimate(resources.ntasks_per_node, resources.nodes, hours, kind, instantiate(cfg.cost))


def _refuse_optuna_sweep() -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN and "optuna" in str(hc.sweeper.get("_target_", "")):
        raise ConfigError("launcher=slurm submits and returns at once, so the Optuna sweeper would get no objective: "
                          "run Optuna trials as Slurm jobs with hydra/launcher=submitit_slurm (no launcher=slurm)")


def submit_training(cfg: DictConfig) -> str | None:
    """Render, write and submit (or with slurm.dry_run=true only print) this run's sbatch script; returns the job id."""
    from hydra.core.hydra_config import HydraConfig

    _refuse_optuna_sweep()
    resources = SlurmResources.from_config(OmegaConf.to_container(cfg.slurm, resolve=True),
                                           OmegaConf.to_container(cfg.trainer, resolve=True))
    run_dir = Path(cfg.paths.run_dir).resolve()
    args = job_overrides(list(HydraConfig.get().overrides.task), cfg, resources)
    command = shlex.join([sys.executable, "train.py", *args])
    text = render(TEMPLATE, {"slurm": resources.as_dict(), "run_id": str(cfg.run_id), "run_dir": str(run_dir),
                             "workdir": str(REPO_ROOT), "command": command})
    cost = requested_cost(cfg, resources)
    summary = f"slurm: requesting {cost.describe()} (time limit {resources.time})"
    if resources.dry_run:
        print(text, end="")
        print(f"# {summary}\n# dry run: not submitted (run directory would be {run_dir})")
        return None
    script = write_script(text, run_dir / SCRIPT_NAME)
    print(summary)
    job_id = submit(script)
    record: dict[str, Any] = {"job_id": job_id, "submitted": now_iso(), "script": str(script),
                              "output": str(run_dir / f"slurm-{job_id}.out"), "command": command,
                              "requested": cost.as_dict(), "resources": resources.as_dict()}
    atomic_write_json(run_dir / "submission.json", record)
    print(f"Submitted batch job {job_id}: {script}\nlog: {record['output']}\nrun directory: {run_dir}")
    return job_id
