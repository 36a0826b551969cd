"""Slurm: sbatch scripts rendered from templates in slurm/, submitted with sbatch; checks made inside a job.

Any job type uses the same three steps (training: trainers/slurm_launch.py; batch scoring likewise):
    resources = SlurmResources.from_config(cfg.slurm, cfg.trainer)   # SlurmConfig's schema and defaults
    text = render("train.sbatch", {"slurm": resources.as_dict(), ...})   # slurm/<template>, Jinja2
    job_id = submit(write_script(text, run_dir / "train.sbatch"))       # or dry_run: print(text)
Templates `{% include "resources.sbatch" %}` for the #SBATCH resource lines, so every job asks alike.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from core.errors import UserError
from core.schema import validate
from trainers.config_check import ConfigError
from trainers.resolvers import REPO_ROOT
from trainers.rundir import atomic_write_text

TEMPLATE_DIR = REPO_ROOT / "slurm"
_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


class SlurmEnvironmentError(ConfigError):
    """The Slurm allocation does not match the config (tasks per node vs devices, nodes vs num_nodes)."""


class SubmitError(UserError, RuntimeError):
    """sbatch refused the script (its message included): printed without a traceback, exit 2."""


def parse_time(value: str | int) -> int:
    """Slurm's --time (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) → seconds."""
    text = str(value).strip()
    match = _TIME.match(text)
    if not match:
        raise ConfigError(f"slurm.time={value!r} is not a Slurm time: use e.g. 90, 01:30:00 or 2-00:00:00")
    d, a, b, c = (int(match[g]) if match[g] else None for g in "dabc")
    if d is not None:  # D-HH[:MM[:SS]]
        return d * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    if c is not None:
        return a * 3600 + b * 60 + c
    if b is not None:
        return a * 60 + b
    return a * 60


@dataclass
class SlurmConfig:
    """The `slurm` config group: what a `launcher=slurm` job asks Slurm for. Schema and defaults in one place
    (stored as the `slurm/default` node; slurm/*.sbatch renders the resolved SlurmResources)."""

    job_name: str = "shipyard-${name}"
    nodes: int | None = None            # None: trainer.num_nodes
    ntasks_per_node: int | None = None  # one task per device; None: gpus_per_node when set, else trainer.devices
    gpus_per_node: int | None = None    # --gpus-per-node; None or 0: no GPU requested (a CPU job)
    device_kind: str | None = None      # key of the cost table for the printed estimate (e.g. h100); None: cpu/gpu
    cpus_per_task: int | None = None    # CPU cores per task (data loading threads); None: the cluster default
    mem: str | None = None              # memory per node, e.g. 64G; None: the cluster default
    time: str = "01:00:00"              # wall-time limit (Slurm format)
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    signal_seconds: int = 120           # USR1 this long before the limit: checkpoint, requeue, resume
    requeue: bool = True                # --requeue: preemption / USR1 puts the job back with the same id
    dry_run: bool = False               # print the sbatch script instead of submitting it
    sbatch_extra: list[str] = field(default_factory=list)  # more directives, e.g. ["--constraint=h100"]
    setup: list[str] = field(default_factory=list)  # shell lines before srun, e.g. ["module load cuda/12.4"]


@dataclass
class SlurmResources(SlurmConfig):
    """What one job asks Slurm for: its SlurmConfig with nodes and ntasks_per_node resolved from the trainer."""

    @classmethod
    def from_config(cls, slurm: SlurmConfig | Mapping[str, Any],
                    trainer: Mapping[str, Any] | None = None) -> "SlurmResources":
        """nodes ← trainer.num_nodes, ntasks_per_node ← gpus_per_node or trainer.devices, when left null."""
        cfg = slurm if isinstance(slurm, SlurmConfig) else validate(SlurmConfig, slurm, name="slurm")
        trainer = trainer or {}
        # 0 GPUs is a CPU job (no --gpus-per-node), not "0 tasks": tasks then follow trainer.devices
        gpus = cfg.gpus_per_node or None
        tasks = next(v for v in (cfg.ntasks_per_node, gpus, trainer.get("devices"), 1) if v is not None)
        nodes = next(v for v in (cfg.nodes, trainer.get("num_nodes"), 1) if v is not None)
        for key, value in (("nodes", nodes), ("ntasks_per_node", tasks)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"slurm.{key} must be a positive integer, got {value!r} (trainer.devices/num_nodes "
                                  "must be integers for a Slurm job: one task per device)")
        settings = {f.name: getattr(cfg, f.name) for f in fields(SlurmConfig)}  # a subclass's own keys stay out
        res = cls(**{**settings, "nodes": nodes, "ntasks_per_node": tasks, "gpus_per_node": gpus})
        limit = parse_time(res.time)
        if res.signal_seconds >= limit:
            raise ConfigError(f"slurm.signal_seconds={res.signal_seconds} must be below slurm.time={res.time} "
                              f"({limit} s): the warning signal would come before the job starts")
        if gpus is not None and gpus != tasks:
            raise ConfigError(f"slurm.gpus_per_node={gpus} but slurm.ntasks_per_node={tasks}: Lightning runs one task "
                              "per GPU; make them equal")
        return res

    def as_dict(self) -> dict[str, Any]:
        """Template values."""
        return asdict(self)


def render(template: str, values: Mapping[str, Any], template_dir: Path = TEMPLATE_DIR) -> str:
    """Render slurm/<template> with Jinja2; an unknown value is an error naming it (StrictUndefined)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["q"] = lambda v: shlex.quote(str(v))
    try:
        return env.get_template(template).render(**values)
    except jinja2.TemplateNotFound as err:
        raise FileNotFoundError(f"no Slurm template {err.name!r} in {template_dir}") from None
    except jinja2.UndefinedError as err:
        raise ValueError(f"slurm/{template}: {err.message}; pass it in the template values") from None


def write_script(text: str, path: Path) -> Path:
    """Write an sbatch script atomically (executable)."""
    atomic_write_text(path, text)
    path.chmod(0o755)
    return path


def submit(script: Path, extra_args: tuple[str, ...] = ()) -> str:
    """`sbatch --parsable SCRIPT` → the job id (`<id>` or `<id>;<cluster>` trimmed)."""
    try:
        proc = subprocess.run(["sbatch", "--parsable", *extra_args, str(script)], capture_output=True, text=True,
                              timeout=120)
    except FileNotFoundError:
        raise SubmitError("sbatch not found: submit from a Slurm login node, or use slurm.dry_run=true") from None
    if proc.returncode != 0:
        raise SubmitError(f"sbatch {script} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip().split(";")[0]


# ---------------------------------------------------------------------- inside a job
def inside_allocation() -> bool:
    """True in a Slurm job (batch script, srun step, salloc shell)."""
    return "SLURM_JOB_ID" in os.environ


def _tasks_per_node() -> int:
    if os.environ.get("SLURM_NTASKS_PER_NODE"):
        return int(os.environ["SLURM_NTASKS_PER_NODE"])
    counts = set()
    for part in os.environ.get("SLURM_TASKS_PER_NODE", "1").split(","):  # e.g. "2(x3),1"
        counts.add(int(part.split("(")[0]))
    if len(counts) != 1:
        raise SlurmEnvironmentError(
            f"Slurm gave nodes different task counts (SLURM_TASKS_PER_NODE={os.environ['SLURM_TASKS_PER_NODE']}); "
            "submit with --ntasks-per-node=N so every node runs trainer.devices tasks")
    return counts.pop()


def check_job_environment(devices: Any, num_nodes: Any) -> None:
    """Inside a Slurm job: ranks come from srun, one per device, on trainer.num_nodes nodes (else a clear error)."""
    if not inside_allocation() or os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return  # not a job, or an interactive shell: Lightning ignores Slurm there too
    ntasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if "SLURM_STEP_ID" not in os.environ:
        if ntasks > 1:
            raise SlurmEnvironmentError(
                f"this Slurm job has {ntasks} tasks but train.py runs in the batch script itself: start it with "
                "`srun python train.py ...` (slurm/train.sbatch does) so every task becomes a rank")
        return
    per_node = _tasks_per_node()
    nodes = int(os.environ.get("SLURM_NNODES") or os.environ.get("SLURM_JOB_NUM_NODES") or 1)
    problems = []
    if devices != per_node:
        problems.append(f"Slurm runs {per_node} task(s) per node (--ntasks-per-node={per_node}) but "
                        f"trainer.devices={devices!r}: one task per device; set trainer.devices={per_node} or "
                        f"submit with --ntasks-per-node={devices} (slurm.ntasks_per_node)")
    if num_nodes != nodes:
        problems.append(f"the job has {nodes} node(s) (--nodes={nodes}) but trainer.num_nodes={num_nodes!r}: "
                        f"set trainer.num_nodes={nodes} or submit with --nodes={num_nodes} (slurm.nodes)")
    if problems:
        raise SlurmEnvironmentError("Slurm allocation does not match the config:\n  - " + "\n  - ".join(problems))


def requeue_resume_mode(resume: str | None) -> str | None:
    """A requeued job (SLURM_RESTART_COUNT > 0) resumes its run even when resume was not set (submitit jobs)."""
    if resume is None and int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0:
        return "auto"
    return resume


def slurm_attempt_info() -> dict[str, Any]:
    """Job id and restart count for run.json's attempts (empty outside Slurm)."""
    if not inside_allocation():
        return {}
    return {"slurm_job_id": os.environ["SLURM_JOB_ID"],
            "slurm_restart_count": int(os.environ.get("SLURM_RESTART_COUNT") or 0),
            "slurm_nodes": os.environ.get("SLURM_JOB_NODELIST")}
